"""Where steps run beyond one process: executors, Celery queues and priorities, Kubernetes GPU pods.

Pure values and parsers; `zimage_assets/executors.py` turns them into Dagster executors and op
tags. Three executors:
- `in_process` (default): every step of a run in the run's own process, one model load per run;
- `celery`: steps are Celery tasks on RabbitMQ; the GPU step goes to the queue named after its
  GPU pool, served by one long-lived worker per GPU (the model stays loaded between batches);
  everything else goes to the CPU queue;
- `k8s`: Dagster's `k8s_job_executor`, one Kubernetes Job per step; the GPU step's pod asks for
  its GPU, node pool, memory and the weights volume through the `dagster-k8s/config` op tag.
"""

from __future__ import annotations

import re

EXECUTORS = ("in_process", "celery", "k8s")

# Celery priority = the run's `dagster-celery/run_priority` + the step's `dagster-celery/priority`
# (RabbitMQ queues with x-max-priority 10: higher is served first). With the GPU step at 5, a
# new-SKU batch is 9, a manual one 5, a refresh batch 1, so new SKUs overtake queued refresh work.
GPU_STEP_PRIORITY = 5
CELERY_RUN_PRIORITY = {"high": 4, "normal": 0, "low": -4}

_LABEL = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
WEIGHTS_VOLUME = "zimage-weights"


def celery_run_priority(priority: str) -> str:
    """The `dagster-celery/run_priority` tag of a batch of this priority (high / normal / low)."""
    if priority not in CELERY_RUN_PRIORITY:
        raise ValueError(f"unknown priority {priority!r}; expected one of {sorted(CELERY_RUN_PRIORITY)}")
    return str(CELERY_RUN_PRIORITY[priority])


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise ValueError(f"ZIMAGE_EXECUTOR={name!r}: use one of {', '.join(EXECUTORS)}")
    return name


def check_queue(name: str, variable: str) -> str:
    if not _QUEUE.match(name):
        raise ValueError(f"{variable}={name!r} is not a usable queue name (letters, digits, . _ : -)")
    return name


def parse_node_selector(raw: str) -> dict[str, str]:
    """`key=value,key2=value2` -> {key: value}; each key and value checked as a Kubernetes label."""
    selector: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"ZIMAGE_K8S_NODE_SELECTOR: {part!r} is not LABEL=VALUE (a Kubernetes label and value)")
        selector[key] = value
    return selector


def parse_tolerations(raw: str) -> list[dict[str, str]]:
    """`key[=value]:Effect,...` -> Kubernetes tolerations (`Exists` without a value, else `Equal`)."""
    tolerations = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        spec, sep, effect = part.rpartition(":")
        key, has_value, value = spec.partition("=")
        if not sep or effect not in _EFFECTS or not _LABEL.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(
                f"ZIMAGE_K8S_TOLERATIONS: {part!r} is not KEY[=VALUE]:EFFECT (effect one of {', '.join(_EFFECTS)})"
            )
        toleration = {"key": key, "operator": "Equal" if has_value else "Exists", "effect": effect}
        if has_value:
            toleration["value"] = value
        tolerations.append(toleration)
    return tolerations


def check_quantity(raw: str, variable: str) -> str:
    if not _QUANTITY.match(raw):
        raise ValueError(f"{variable}={raw!r} is not a Kubernetes quantity such as 32Gi")
    return raw


def gpu_step_k8s_config(
    *,
    pool: str,
    gpus: int,
    node_selector: dict[str, str],
    tolerations: list[dict[str, str]],
    memory: str,
    weights_claim: str,
    weights_mount: str,
) -> dict:
    """The `dagster-k8s/config` of the GPU step: its GPUs, node pool, memory and read-only weights.

    Keys follow dagster-k8s (container_config / pod_spec_config / pod_template_spec_metadata, in
    the Kubernetes client's snake_case). Limits only for the GPU (Kubernetes sets the request to
    the limit); memory is requested and limited alike, so the pod is never evicted for using it.
    """
    container: dict = {
        "resources": {
            "limits": {"nvidia.com/gpu": str(gpus), "memory": memory},
            "requests": {"memory": memory},
        }
    }
    pod_spec: dict = {"node_selector": dict(node_selector), "tolerations": [dict(t) for t in tolerations]}
    if weights_claim:
        container["volume_mounts"] = [{"name": WEIGHTS_VOLUME, "mount_path": weights_mount, "read_only": True}]
        pod_spec["volumes"] = [
            {"name": WEIGHTS_VOLUME, "persistent_volume_claim": {"claim_name": weights_claim, "read_only": True}}
        ]
    return {
        "container_config": container,
        "pod_spec_config": pod_spec,
        "pod_template_spec_metadata": {"labels": {"zimage/gpu-pool": pool}},
    }


def batches_per_run(load_seconds: float, batch_seconds: float, *, max_load_share: float = 0.05, max_run_seconds: float = 1800) -> int:
    """How many batches one GPU pod should run so that loading the model costs at most
    `max_load_share` of its time, without holding the GPU longer than `max_run_seconds` (a new-SKU
    batch waits at most one such run for a GPU). At least 1."""
    if load_seconds < 0 or batch_seconds <= 0:
        raise ValueError("load_seconds must be >= 0 and batch_seconds > 0")
    wanted = load_seconds * (1 - max_load_share) / (max_load_share * batch_seconds)
    affordable = int(max_run_seconds // batch_seconds)
    return max(1, min(int(-(-wanted // 1)), affordable))
