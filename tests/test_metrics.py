"""Prometheus metrics and cost accounting: real runs, promtool, a real Pushgateway."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, metadata_of
from servers import promtool
from zimage_assets.domain.cost import LATENCY_BUCKETS, batch_cost, cost_of, cumulative, latency_counts, per_1000

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples: dict, name: str, **labels) -> float:
    matches = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, f"{name}{labels}: {matches}"
    return matches[0]


def _promtool_check_metrics(text: str) -> None:
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- cost, pure ----


def _receipt(sku, view, spec, seconds, cache_hit=False, attempt=0):
    return {"sku": sku, "view": view, "spec_hash": spec, "seconds": seconds, "cache_hit": cache_hit, "attempt": attempt}


def test_batch_cost_counts_each_image_once_and_cache_hits_as_free():
    receipts = [
        _receipt("A", "front", "s1", 2.0),
        _receipt("B", "front", "s1", 2.0),  # same spec as A/front: one image, made once
        _receipt("A", "back", "s2", 4.0),
        _receipt("C", "front", "s3", 0.0, cache_hit=True),
        _receipt("C", "back", "s4", 3.0, attempt=0),
        _receipt("C", "back", "s5", 3.0, attempt=1),  # a retry with the next seed costs again
    ]
    cost = batch_cost(receipts, gpu_hour_price_usd=3.6)
    assert (cost.images, cost.generated, cost.gpu_seconds) == (5, 4, 12.0)
    assert cost.cost_usd == pytest.approx(0.012)  # 12 s at $3.60 per hour
    assert cost.cost_per_1000_images_usd == pytest.approx(2.4)  # $0.012 for 5 delivered images
    assert batch_cost([], 2.0).cost_per_1000_images_usd == 0.0
    assert cost_of(3600, 2.5) == 2.5 and per_1000(1.0, 0) == 0.0
    with pytest.raises(ValueError):
        cost_of(-1, 2.0)


def test_latency_counts_become_a_cumulative_histogram():
    counts = latency_counts([0.01, 0.05, 0.07, 0.9, 1000.0])
    assert len(counts) == len(LATENCY_BUCKETS) + 1
    assert counts[0] == 2 and counts[1] == 1 and counts[LATENCY_BUCKETS.index(1.0)] == 1 and counts[-1] == 1
    assert cumulative(counts)[-1] == 5


# ---- a real run's metadata and metrics ----


def test_a_batch_reports_cost_and_the_exposition_passes_promtool(project, monkeypatch):
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    images = metadata_of(project.generate(batch_id), "product_images")

    receipts = project.state_db.receipts(batch_id)
    distinct = {r["spec_hash"]: r["seconds"] for r in receipts}
    assert images["gpu_seconds"] == pytest.approx(sum(distinct.values()), abs=1e-3)
    assert images["gpu_hour_price_usd"] == 2.5
    assert images["cost_usd"] == pytest.approx(images["gpu_seconds"] / 3600 * 2.5, rel=1e-3)
    assert images["cost_per_1000_images_usd"] == pytest.approx(images["cost_usd"] / 12 * 1000, rel=1e-3)
    assert images["run_gpu_seconds"] == pytest.approx(images["generation_seconds"], abs=1e-3)

    from resources.metrics import exposition

    text = exposition(project.state_db, project.instance).decode()
    _promtool_check_metrics(text)
    samples = _samples(text)
    model = "tiny-random-zimage"
    assert _value(samples, "zimage_requests_total", model=model, status="generated", priority="normal") == 8
    assert _value(samples, "zimage_requests_total", model=model, status="cache_hit", priority="normal") == 0
    assert _value(samples, "zimage_inference_latency_seconds_count", model=model) == 8
    assert _value(samples, "zimage_inference_latency_seconds_bucket", model=model, le="+Inf") == 8
    assert _value(samples, "zimage_inference_latency_seconds_sum", model=model) == pytest.approx(images["generation_seconds"], abs=0.01)
    assert _value(samples, "zimage_images_per_second", model=model) == pytest.approx(images["images_per_second"], rel=0.01)
    assert _value(samples, "zimage_cache_hit_rate") == 0.0
    assert _value(samples, "zimage_cost_per_1000_images_usd", model=model) == pytest.approx(images["cost_per_1000_images_usd"])
    assert _value(samples, "zimage_gpu_seconds_total", model=model) == pytest.approx(images["gpu_seconds"], abs=1e-3)
    assert _value(samples, "zimage_errors_total", error_type="run_failed") == 0
    assert _value(samples, "zimage_safety_blocks_total", stage="image") == 0
    for priority in ("high", "normal", "low"):
        assert _value(samples, "zimage_queue_length", priority=priority) == 0

    # The same numbers were written to the embedded default's metrics file after the run.
    metrics_file = project.resources["metrics"].textfile_path
    assert metrics_file.endswith("metrics.prom")
    _promtool_check_metrics(Path(metrics_file).read_text())
    assert _value(_samples(Path(metrics_file).read_text()), "zimage_requests_total", model=model, status="generated", priority="normal") == 8

    # A second batch of the same SKUs: all from the cache; counters grow, the gauges move.
    (second,) = project.mint(skus=HOODIES)
    cached = metadata_of(project.generate(second), "product_images")
    assert (cached["generated"], cached["cost_usd"], cached["cost_per_1000_images_usd"]) == (0, 0.0, 0.0)
    samples = _samples(exposition(project.state_db, project.instance).decode())
    assert _value(samples, "zimage_requests_total", model=model, status="cache_hit", priority="normal") == 8
    assert _value(samples, "zimage_requests_total", model=model, status="generated", priority="normal") == 8
    assert _value(samples, "zimage_cache_hit_rate") == 1.0
    assert _value(samples, "zimage_cache_lookups_total", result="hit") == 8


@dg.op
def _noop():
    pass


@dg.job
def _queued_job():
    _noop()


def _origin(job_name: str):
    """Where a queued run's job would be loaded from (Dagster requires one for a queued run)."""
    import sys

    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(executable_path=sys.executable, python_file=__file__), location_name="tests")
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def test_queue_length_is_read_from_dagsters_run_queue(project):
    tags = [
        {"zimage/priority": "high", "dagster/priority": "10"},
        {"zimage/priority": "high", "dagster/priority": "10"},
        {"dagster/priority": "-10"},  # a run launched without the project's tag
        {},
    ]
    for run_tags in tags:
        project.instance.create_run_for_job(
            _queued_job, status=dg.DagsterRunStatus.QUEUED, tags=run_tags, remote_job_origin=_origin("_queued_job")
        )
    project.instance.create_run_for_job(_queued_job, status=dg.DagsterRunStatus.FAILURE, tags={})
    project.instance.add_dynamic_partitions("batches", ["x"])  # unrelated state does not matter

    from resources.metrics import exposition

    text = exposition(project.state_db, project.instance).decode()
    _promtool_check_metrics(text)
    samples = _samples(text)
    assert [_value(samples, "zimage_queue_length", priority=p) for p in ("high", "normal", "low")] == [2, 1, 1]
    assert 0 < _value(samples, "zimage_queue_oldest_seconds", priority="high") < 60
    assert _value(samples, "zimage_errors_total", error_type="run_failed") == 1
    assert _value(samples, "zimage_metrics_source_up", source="dagster") == 1


def test_runs_push_to_a_pushgateway(project_env, monkeypatch, pushgateway, instance):
    from conftest import Project
    from resources import build_resources
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_PUSHGATEWAY_URL", pushgateway.url)
    project = Project(build_resources(Settings.from_env()), instance)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])
    project.generate(batch_id)

    text = pushgateway.metrics_text()
    samples = _samples(text)
    assert _value(samples, "zimage_requests_total", job="zimage", status="generated", priority="normal") == 4
    assert _value(samples, "zimage_queue_length", job="zimage", priority="high") == 0


def test_a_pushgateway_that_is_down_is_a_warning_not_a_failure(project_env, monkeypatch, instance):
    from conftest import Project
    from resources import build_resources
    from servers import free_port
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    project = Project(build_resources(Settings.from_env()), instance)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])
    result = project.generate(batch_id)
    assert result.success
    warnings = [
        e.message for e in instance.all_logs(result.run_id) if e.level >= 30 and "metrics not pushed" in (e.message or "")
    ]
    assert warnings


# ---- alert rules ----


def test_the_alert_rules_pass_promtool():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_each_alert_fires_on_its_condition_and_not_otherwise(tmp_path):
    """promtool's rule unit tests: synthetic series in, the expected alerts out."""
    tests = textwrap.dedent(
        f"""
        rule_files: [{RULES}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              # 100 images per minute, 10 failed runs per minute: 10% errors.
              - series: 'zimage_requests_total{{model="turbo",status="generated",priority="high"}}'
                values: '0+100x40'
              - series: 'zimage_errors_total{{error_type="run_failed"}}'
                values: '0+10x40'
              # Every image takes 20 s: P95 far above 10 s.
              - series: 'zimage_inference_latency_seconds_bucket{{model="turbo",le="10.0"}}'
                values: '0+0x40'
              - series: 'zimage_inference_latency_seconds_bucket{{model="turbo",le="30.0"}}'
                values: '0+100x40'
              - series: 'zimage_inference_latency_seconds_bucket{{model="turbo",le="+Inf"}}'
                values: '0+100x40'
              # The one GPU of gpu-turbo busy the whole time while runs wait.
              - series: 'zimage_gpu_pool_slots{{pool="gpu-turbo"}}'
                values: '1x40'
              - series: 'zimage_gpu_pool_slots_in_use{{pool="gpu-turbo"}}'
                values: '1x40'
              - series: 'zimage_queue_length{{priority="low"}}'
                values: '30x40'
              # A new-SKU batch that has waited longer and longer.
              - series: 'zimage_queue_length{{priority="high"}}'
                values: '1x40'
              - series: 'zimage_queue_oldest_seconds{{priority="high"}}'
                values: '0+60x40'
            alert_rule_test:
              - eval_time: 5m
                alertname: ZImageHighErrorRate
                exp_alerts: []
              - eval_time: 30m
                alertname: ZImageHighErrorRate
                exp_alerts:
                  - exp_labels: {{severity: warning}}
                    exp_annotations:
                      summary: "Z-Image error rate above 5%"
                      description: "10% errors per image request over the last 15 minutes (failed runs, cache outages). See failed runs in the Dagster UI."
              - eval_time: 40m
                alertname: ZImageHighP95Latency
                exp_alerts:
                  - exp_labels: {{severity: warning, model: turbo}}
                    exp_annotations:
                      summary: "P95 inference latency of turbo above 10 s per image"
                      description: "P95 is 29s per image. Check GPU health, CPU offload, image sizes and batch size."
              - eval_time: 20m
                alertname: ZImageGPUOverload
                exp_alerts: []
              - eval_time: 40m
                alertname: ZImageGPUOverload
                exp_alerts:
                  - exp_labels: {{severity: warning, pool: gpu-turbo}}
                    exp_annotations:
                      summary: "GPU pool gpu-turbo saturated with work queued"
                      description: "All 1 slots of gpu-turbo have been in use for 30 minutes while runs wait in the queue."
              - eval_time: 20m
                alertname: ZImageHighPriorityBacklog
                exp_alerts: []
              - eval_time: 40m
                alertname: ZImageHighPriorityBacklog
                exp_alerts:
                  - exp_labels: {{severity: critical, priority: high}}
                    exp_annotations:
                      summary: "High-priority (new SKU) batches are backing up"
                      description: "Oldest queued high-priority run: 40m 0s; runs waiting: 1."
          - interval: 1m
            input_series:
              # A healthy hour: 1 error per 1000 images, 1.5 s per image, a GPU to spare.
              - series: 'zimage_requests_total{{model="turbo",status="generated",priority="high"}}'
                values: '0+1000x60'
              - series: 'zimage_errors_total{{error_type="run_failed"}}'
                values: '0+1x60'
              - series: 'zimage_inference_latency_seconds_bucket{{model="turbo",le="2.0"}}'
                values: '0+1000x60'
              - series: 'zimage_inference_latency_seconds_bucket{{model="turbo",le="+Inf"}}'
                values: '0+1000x60'
              - series: 'zimage_gpu_pool_slots{{pool="gpu-turbo"}}'
                values: '2x60'
              - series: 'zimage_gpu_pool_slots_in_use{{pool="gpu-turbo"}}'
                values: '1x60'
              - series: 'zimage_queue_length{{priority="high"}}'
                values: '3x60'
              - series: 'zimage_queue_oldest_seconds{{priority="high"}}'
                values: '120x60'
            alert_rule_test:
              - {{eval_time: 60m, alertname: ZImageHighErrorRate, exp_alerts: []}}
              - {{eval_time: 60m, alertname: ZImageHighP95Latency, exp_alerts: []}}
              - {{eval_time: 60m, alertname: ZImageGPUOverload, exp_alerts: []}}
              - {{eval_time: 60m, alertname: ZImageHighPriorityBacklog, exp_alerts: []}}
        """
    )
    path = tmp_path / "alerts_test.yml"
    path.write_text(tests)
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_production_example_names_every_variable():
    settings_source = (REPO / "zimage_assets" / "settings" / "__init__.py").read_text()
    import re

    documented = set(re.findall(r"# (ZIMAGE_[A-Z0-9_]+):", settings_source))
    example = (REPO / "deploy" / "production.env.example").read_text()
    assigned = set(re.findall(r"^(ZIMAGE_[A-Z0-9_]+)=", example, flags=re.M))
    assert documented and documented <= assigned, sorted(documented - assigned)
    for name in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        assert f"\n{name}=" in example
