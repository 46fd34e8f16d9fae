"""Beyond one GPU: executors, Celery workers, Kubernetes GPU pods."""

from __future__ import annotations

from zimage_assets.settings.defaults import DEFAULTS
from zimage_assets.settings.values import integer


def scaleout_settings(env: dict[str, str], gpu_pool: str) -> dict:
    from zimage_assets.domain import placement

    values = {
        "executor": placement.check_executor(env.get("ZIMAGE_EXECUTOR") or DEFAULTS["executor"]),
        "celery_broker_url": env.get("ZIMAGE_CELERY_BROKER_URL") or DEFAULTS["celery_broker_url"],
        "celery_backend_url": env.get("ZIMAGE_CELERY_BACKEND_URL") or DEFAULTS["celery_backend_url"],
        "celery_cpu_queue": placement.check_queue(env.get("ZIMAGE_CELERY_CPU_QUEUE") or DEFAULTS["celery_cpu_queue"], "ZIMAGE_CELERY_CPU_QUEUE"),
        "k8s_gpus": integer(env, "ZIMAGE_K8S_GPUS", DEFAULTS["k8s_gpus"]),
        "k8s_node_selector": env.get("ZIMAGE_K8S_NODE_SELECTOR") or f"zimage/gpu-pool={gpu_pool}",
        "k8s_tolerations": env.get("ZIMAGE_K8S_TOLERATIONS", DEFAULTS["k8s_tolerations"]),
        "k8s_gpu_memory": placement.check_quantity(env.get("ZIMAGE_K8S_GPU_MEMORY") or DEFAULTS["k8s_gpu_memory"], "ZIMAGE_K8S_GPU_MEMORY"),
        "k8s_weights_claim": env.get("ZIMAGE_K8S_WEIGHTS_CLAIM", DEFAULTS["k8s_weights_claim"]),
        "k8s_weights_mount": env.get("ZIMAGE_K8S_WEIGHTS_MOUNT") or DEFAULTS["k8s_weights_mount"],
    }
    placement.check_queue(gpu_pool, "ZIMAGE_GPU_POOL")  # the GPU step's Celery queue and node label
    placement.parse_node_selector(values["k8s_node_selector"])  # a wrong value fails here, naming it
    placement.parse_tolerations(values["k8s_tolerations"])
    if not values["k8s_weights_mount"].startswith("/"):
        raise ValueError(f"ZIMAGE_K8S_WEIGHTS_MOUNT={values['k8s_weights_mount']!r} must be an absolute path")
    return values
