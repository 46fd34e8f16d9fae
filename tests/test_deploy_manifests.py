"""Everything under deploy/ checked without a cluster.

- Kubernetes manifests: Kubernetes' own OpenAPI schemas, strict (the `kubernetes-validate`
  package's bundled schemas: unknown fields fail).
- The KEDA ScaledObject: KEDA's published model (cloudcoil's generated pydantic models of its
  CRD); a field the model does not know fails too (it would be dropped on the round trip).
- Dagster's Helm values: the chart's schema for the parts we set (transcribed from the chart's
  pydantic source, tests/fixtures/helm/: the chart's own 1.13 values.schema.json is not available
  offline), their Kubernetes objects strict, and the same run queue and pools as dagster.yaml.
- Autoscaling queries: valid PromQL (promtool) over metrics the project exports.
- The pieces agree: pool, node label, weights claim and mount, settings that load, image paths.
"""

from __future__ import annotations

import dataclasses

import json
import re
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import FIXTURES, REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33.0"
HELM_VALUES = {"k8s/values.yaml", "k8s/prometheus-adapter-values.yaml"}
# Not Kubernetes objects, and checked where they belong: Dagster's instance config
# (test_definitions), Prometheus' config and rules (test_metrics), Grafana's provisioning.
NOT_KUBERNETES = ("dagster.postgres.yaml", "prometheus/", "grafana/")


def _yaml_files() -> list[str]:
    return sorted(str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _documents(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / relative).read_text()) if d]


def _objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for f in _manifest_files() for d in _documents(f) if d.get("kind") == kind}


def _manifest_files() -> list[str]:
    return [f for f in _yaml_files() if f not in HELM_VALUES and not f.startswith(NOT_KUBERNETES)]


def test_every_yaml_file_under_deploy_is_checked_by_one_of_these_tests():
    for relative in _manifest_files():
        docs = _documents(relative)
        assert docs and all("apiVersion" in d and "kind" in d for d in docs), f"{relative}: classify it in this test"


@pytest.mark.parametrize("relative", _manifest_files())
def test_manifests_are_valid_for_kubernetes_or_keda(relative):
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    for doc in _documents(relative):
        if doc["apiVersion"].startswith("keda.sh/"):
            assert doc["kind"] == "ScaledObject"
            model = ScaledObject.model_validate(doc)
            assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == doc  # nothing unknown dropped
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_strict_checks_catch_a_misspelt_field():
    deployment = _objects("Deployment")["zimage-gpu-worker"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = broken["spec"]["template"]["spec"]["containers"][0].pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)

    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    scaled = json.loads(json.dumps(_objects("ScaledObject")["zimage-gpu-worker"]))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")  # the HPA's name, not KEDA's
    assert ScaledObject.model_validate(scaled).model_dump(mode="json", by_alias=True, exclude_none=True) != scaled


def test_helm_values_fit_the_charts_schema_and_kubernetes():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    schema = json.loads((FIXTURES / "helm" / "dagster-values.subset.schema.json").read_text())
    jsonschema.validate(values, schema)
    broken = {**values, "concurrency": {**values["concurrency"], "pool": values["concurrency"]["pools"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": deployment["name"]},
        "spec": {
            "containers": [
                {
                    "name": "code-server",
                    "image": f"{deployment['image']['repository']}:{deployment['image']['tag']}",
                    "imagePullPolicy": deployment["image"]["pullPolicy"],
                    "resources": deployment["resources"],
                    "envFrom": [{"configMapRef": c} for c in deployment["envConfigMaps"] + launcher["envConfigMaps"]]
                    + [{"secretRef": s} for s in deployment["envSecrets"] + launcher["envSecrets"]],
                }
            ]
        },
    }
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    configmaps = _objects("ConfigMap")
    assert {c["name"] for c in deployment["envConfigMaps"] + launcher["envConfigMaps"]} <= set(configmaps)
    assert deployment["codeServerArgs"] == ["-m", "zimage_assets.definitions"]


def test_helm_values_keep_the_run_queue_priorities_and_pools_of_dagster_yaml():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert (coordinator["enabled"], coordinator["type"]) == (True, instance["run_coordinator"]["class"])
    assert coordinator["config"]["queuedRunCoordinator"] == {}  # limits under `concurrency`, as in dagster.yaml
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"] == {"defaultLimit": instance["concurrency"]["pools"]["default_limit"], "granularity": instance["concurrency"]["pools"]["granularity"]}
    assert concurrency["runs"] == {
        "maxConcurrentRuns": instance["concurrency"]["runs"]["max_concurrent_runs"],
        "tagConcurrencyLimits": instance["concurrency"]["runs"]["tag_concurrency_limits"],
    }
    assert values["dagsterDaemon"]["runRetries"] == {"enabled": True, "maxRetries": instance["run_retries"]["max_retries"]}
    monitoring = instance["run_monitoring"]
    assert values["dagsterDaemon"]["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "maxResumeRunAttempts": monitoring["max_resume_run_attempts"],
    }
    assert values["telemetry"] == instance["telemetry"]


def _promtool() -> str:
    import shutil

    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed: run scripts/services", pytrace=False)
    return path


def test_autoscaling_queries_are_promql_over_metrics_the_project_exports(tmp_path):
    (keda,) = _objects("ScaledObject").values()
    (trigger,) = keda["spec"]["triggers"]
    adapter = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    adapter_query = rule["metricsQuery"].replace("<<.Series>>", "zimage_queue_length").replace("<<.LabelMatchers>>", "")
    rules = {"groups": [{"name": "autoscaling", "rules": [{"record": "keda:query", "expr": trigger["metadata"]["query"]}, {"record": "adapter:query", "expr": adapter_query}]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    exported = set(re.findall(r'"(zimage_[a-z_]+)"', (REPO / "resources" / "metrics.py").read_text()))
    for query in (trigger["metadata"]["query"], adapter_query, rule["seriesQuery"]):
        assert set(re.findall(r"zimage_[a-z_]+", query)) <= exported, query
    hpa = _objects("HorizontalPodAutoscaler")["zimage-gpu-worker"]
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == rule["name"]["as"]


def test_the_deploy_pieces_agree_with_each_other_and_with_the_settings(tmp_path):
    from zimage_assets.settings import Settings

    env = _objects("ConfigMap")["zimage-env"]["data"]
    # Every value in the ConfigMap is a valid setting; the weights folder exists on the pod's volume
    # only, so here an empty folder stands in for it while everything else is checked as written.
    stand_in = tmp_path / "weights"
    stand_in.mkdir()
    checked = Settings.from_env({**env, "ZIMAGE_MODEL_PATH": str(stand_in)})
    settings = dataclasses.replace(checked, model_path=env["ZIMAGE_MODEL_PATH"])
    deployments = _objects("Deployment")
    gpu = deployments["zimage-gpu-worker"]
    pod = gpu["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:2] == ["zimage", "worker"] and command[command.index("--pool") + 1] == settings.gpu_pool
    assert pod["nodeSelector"] == dict(kv.split("=", 1) for kv in settings.k8s_node_selector.split(","))
    weights = next(v for v in pod["volumes"] if v["name"] == "zimage-weights")["persistentVolumeClaim"]["claimName"]
    assert weights == settings.k8s_weights_claim in _objects("PersistentVolumeClaim")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "zimage-weights")
    assert mount["mountPath"] == settings.k8s_weights_mount and settings.model_path.startswith(settings.k8s_weights_mount + "/")
    for scaler in (_objects("ScaledObject")["zimage-gpu-worker"], _objects("HorizontalPodAutoscaler")["zimage-gpu-worker"]):
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments
    assert _objects("Service")["zimage-metrics"]["spec"]["selector"] == deployments["zimage-metrics"]["spec"]["selector"]["matchLabels"]


def test_the_image_builds_from_the_repository_and_never_fetches_weights():
    dockerfile = (K8S / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.M):
        *sources, _target = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert "FROM ${CUDA_IMAGE}" in dockerfile and "ARG CUDA_IMAGE=nvidia/cuda:" in dockerfile
    assert 'TORCH_SPEC="torch==2.13.0"' in dockerfile and "download.pytorch.org/whl/cu" in dockerfile
    assert "HF_HUB_OFFLINE=1" in dockerfile
    assert not re.search(r"hf download|huggingface-cli|snapshot_download|from_pretrained", dockerfile.split("FROM", 1)[1])
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "zimage_data" in ignored
