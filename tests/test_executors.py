"""ZIMAGE_EXECUTOR: the code location's executor and where the GPU step runs, without a broker or a
cluster. The Kubernetes step Job is built with dagster-k8s's own functions from the GPU asset's op
tags and checked against Kubernetes' schema (strict); `zimage worker` is checked by its command
line and the private config it writes. The Celery workers themselves run in test_celery_workers.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import kubernetes
import kubernetes_validate
import pytest

from conftest import REPO

K8S_VERSION = "1.33.0"


def _settings(**env):
    from zimage_assets.settings import Settings

    return Settings.from_env({"ZIMAGE_HOME": "/tmp/zimage-test-home", **env})


def test_the_default_is_the_in_process_executor_with_no_placement_tags():
    from zimage_assets.executors import gpu_step_tags

    settings = _settings()
    assert settings.executor == "in_process"
    assert gpu_step_tags(settings) == {}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ZIMAGE_EXECUTOR": "dask"}, "ZIMAGE_EXECUTOR='dask': use one of in_process, celery, k8s"),
        ({"ZIMAGE_K8S_NODE_SELECTOR": "gpu"}, "ZIMAGE_K8S_NODE_SELECTOR: 'gpu' is not LABEL=VALUE"),
        ({"ZIMAGE_K8S_TOLERATIONS": "nvidia.com/gpu:Sometimes"}, "ZIMAGE_K8S_TOLERATIONS: 'nvidia.com/gpu:Sometimes' is not KEY[=VALUE]:EFFECT"),
        ({"ZIMAGE_K8S_GPU_MEMORY": "a lot"}, "ZIMAGE_K8S_GPU_MEMORY='a lot' is not a Kubernetes quantity"),
        ({"ZIMAGE_K8S_GPUS": "0"}, "ZIMAGE_K8S_GPUS='0' must be at least 1"),
        ({"ZIMAGE_CELERY_CPU_QUEUE": "cpu queue"}, "ZIMAGE_CELERY_CPU_QUEUE='cpu queue' is not a usable queue name"),
        ({"ZIMAGE_K8S_WEIGHTS_MOUNT": "models"}, "ZIMAGE_K8S_WEIGHTS_MOUNT='models' must be an absolute path"),
    ],
)
def test_bad_placement_settings_fail_naming_the_variable_and_value(env, message):
    with pytest.raises(ValueError) as error:
        _settings(**env)
    assert message in str(error.value)


def test_celery_routes_the_gpu_step_to_its_pool_and_runs_by_batch_priority():
    from zimage_assets.domain.batching import PRIORITY_TAG_VALUES
    from zimage_assets.executors import celery_executor_config, gpu_step_tags
    from zimage_assets.minting import run_tags

    settings = _settings(ZIMAGE_EXECUTOR="celery", ZIMAGE_MODEL="turbo")
    assert gpu_step_tags(settings) == {"dagster-celery/queue": "gpu-turbo", "dagster-celery/priority": "5"}
    celery = {p: int(run_tags({"priority": p, "batch_id": "b", "kind": "new"})["dagster-celery/run_priority"]) + 5 for p in PRIORITY_TAG_VALUES}
    assert celery == {"high": 9, "normal": 5, "low": 1}  # inside RabbitMQ's 0..10, new SKUs first

    config = celery_executor_config(settings)["config_source"]
    assert config["task_default_queue"] == "zimage-cpu"  # every other step
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]  # a killed worker gives the batch back
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_heartbeat"] == 0  # solo workers cannot beat during a batch


def test_a_broker_password_from_the_environment_stays_an_env_reference(monkeypatch):
    from zimage_assets.executors import celery_executor_config

    monkeypatch.setenv("ZIMAGE_CELERY_BROKER_URL", "pyamqp://zimage:s3cret@rabbit:5672/zimage")
    settings = _settings(ZIMAGE_EXECUTOR="celery", ZIMAGE_CELERY_BROKER_URL="pyamqp://zimage:s3cret@rabbit:5672/zimage")
    assert celery_executor_config(settings)["broker"] == {"env": "ZIMAGE_CELERY_BROKER_URL"}
    assert celery_executor_config(settings, resolve_secrets=True)["broker"] == "pyamqp://zimage:s3cret@rabbit:5672/zimage"


def test_the_code_location_switches_executor_and_gpu_step_tags(project_env):
    """The real definitions, loaded fresh under each ZIMAGE_EXECUTOR (one process each)."""
    script = (
        "import json, dagster as dg\n"
        "from zimage_assets.definitions import defs\n"
        "job = defs.resolve_job_def('generate_batch')\n"
        "from zimage_assets.assets.images import product_images\n"
        "print(json.dumps({'executor': job.executor_def.name, 'tags': product_images.op.tags}))\n"
    )
    procs = {
        name: subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "ZIMAGE_EXECUTOR": name}, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for name in ("in_process", "celery", "k8s")
    }
    seen = {name: json.loads(proc.communicate(timeout=180)[0].strip().splitlines()[-1]) for name, proc in procs.items()}
    assert seen["in_process"] == {"executor": "in_process", "tags": {}}
    assert seen["celery"] == {"executor": "celery", "tags": {"dagster-celery/queue": "gpu-tiny", "dagster-celery/priority": "5"}}
    assert seen["k8s"]["executor"] == "k8s"
    assert set(seen["k8s"]["tags"]) == {"dagster-k8s/config"}


def test_the_gpu_step_job_manifest_asks_for_its_gpu_node_pool_and_weights():
    """dagster-k8s's own path for a step pod: op tags -> get_user_defined_k8s_config ->
    construct_dagster_k8s_job, serialised by the Kubernetes client, valid for Kubernetes (strict)."""
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    from zimage_assets.executors import gpu_step_tags

    settings = _settings(
        ZIMAGE_EXECUTOR="k8s",
        ZIMAGE_MODEL="turbo",
        ZIMAGE_K8S_NODE_SELECTOR="nvidia.com/gpu.product=NVIDIA-A10G,zimage/gpu-pool=gpu-turbo",
        ZIMAGE_K8S_TOLERATIONS="nvidia.com/gpu:NoSchedule,dedicated=zimage:NoExecute",
        ZIMAGE_K8S_GPU_MEMORY="48Gi",
    )
    user_defined = get_user_defined_k8s_config(gpu_step_tags(settings))
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="registry.example.com/zimage-catalog:1.0.0", dagster_home="/opt/dagster/dagster_home", instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-0123456789abcdef",
        pod_name="dagster-step-0123456789abcdef",
        component="step_worker",
        user_defined_k8s_config=user_defined,
        labels={"dagster/op": "product_images"},
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "48Gi"}
    assert container["resources"]["requests"] == {"memory": "48Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G", "zimage/gpu-pool": "gpu-turbo"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "zimage", "effect": "NoExecute"},
    ]
    assert {"name": "zimage-weights", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    weights = next(v for v in pod["volumes"] if v["name"] == "zimage-weights")
    assert weights["persistentVolumeClaim"] == {"claimName": "zimage-weights", "readOnly": True}
    assert manifest["spec"]["template"]["metadata"]["labels"]["zimage/gpu-pool"] == "gpu-turbo"
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_without_a_weights_claim_the_step_pod_mounts_nothing():
    from zimage_assets.executors import gpu_step_k8s_config

    config = gpu_step_k8s_config(_settings(ZIMAGE_EXECUTOR="k8s", ZIMAGE_K8S_WEIGHTS_CLAIM=""))
    assert "volume_mounts" not in config["container_config"] and "volumes" not in config["pod_spec_config"]


def test_batches_per_run_amortises_the_model_load_within_the_gpu_hold_time():
    from zimage_assets.domain.placement import batches_per_run

    assert batches_per_run(0, 60) == 1
    assert batches_per_run(40, 400) == 2  # a 40 s load on a 400 s batch: 2 batches keep it under 5 %
    assert batches_per_run(40, 100) == 8
    assert batches_per_run(40, 400, max_run_seconds=300) == 1  # never hold the GPU longer than allowed


# ---- zimage worker ----


def _worker(monkeypatch, tmp_path, capsys, *args, executor="celery"):
    from zimage_assets import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("ZIMAGE_EXECUTOR", executor)
    monkeypatch.setenv("ZIMAGE_CELERY_BROKER_URL", "pyamqp://zimage:s3cret@rabbit:5672/zimage")
    (tmp_path / "dagster").mkdir(exist_ok=True)
    code = cli.main(["worker", *args, "--dry-run"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_gpu_worker_is_one_solo_celery_process_on_its_pool_queue(project_env, monkeypatch, tmp_path, capsys):
    code, out = _worker(monkeypatch, tmp_path, capsys, "--gpu", "3")
    assert code == 0, out
    assert out.startswith("CUDA_VISIBLE_DEVICES=3 ")
    for part in ("-A dagster_celery.app worker", "--prefetch-multiplier=1", "-Q gpu-tiny", "-n gpu-tiny-gpu3@%h", "--pool solo --concurrency 1", "-I zimage_assets.definitions"):
        assert part in out
    config = tmp_path / "dagster" / "zimage-workers" / "gpu-tiny-gpu3" / "dagster_celery_config.py"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the broker password
    text = config.read_text()
    for line in ("broker_url = 'pyamqp://zimage:s3cret@rabbit:5672/zimage'", "task_acks_late = True", "broker_heartbeat = 0", "task_default_queue = 'zimage-cpu'"):
        assert line in text


def test_a_cpu_worker_serves_the_cpu_queue_with_several_processes(project_env, monkeypatch, tmp_path, capsys):
    code, out = _worker(monkeypatch, tmp_path, capsys, "--cpu", "--concurrency", "3")
    assert code == 0, out
    assert "CUDA_VISIBLE_DEVICES" not in out
    assert "-Q zimage-cpu" in out and "--pool prefork --concurrency 3" in out and "-n cpu@%h" in out


@pytest.mark.parametrize(
    "args, executor, message",
    [
        (["--gpu", "0"], "in_process", "ZIMAGE_EXECUTOR is 'in_process': set ZIMAGE_EXECUTOR=celery"),
        (["--gpu", "0", "--pool", "gpu-turbo"], "celery", "--pool gpu-turbo but this environment's GPU asset claims 'gpu-tiny'"),
        (["--gpu", "0;rm -rf /"], "celery", "--gpu '0;rm -rf /': give one GPU"),
        (["--cpu", "--name", "../x"], "celery", "--name '../x': letters, digits"),
    ],
)
def test_worker_mistakes_are_one_clear_line(project_env, monkeypatch, tmp_path, capsys, args, executor, message):
    code, out = _worker(monkeypatch, tmp_path, capsys, *args, executor=executor)
    assert code == 1 and message in out, out
