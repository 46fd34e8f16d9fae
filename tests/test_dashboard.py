"""The Grafana dashboard and the alert rules against a real Prometheus scraping a real zimage-metrics.

After a real batch, Prometheus (Debian's, on a free loopback port) scrapes `zimage-metrics` every
second and loads deploy/prometheus/alerts.yml. Every query of every dashboard panel must return a
series, except the NVML GPU panels, which must be absent (not zero) on a machine without an NVIDIA
GPU; every alert rule must load healthy, evaluate without error, and each metric it reads must exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import REPO
from servers import _die_with_parent, _stop, free_port, port_open, require_binary, wait_until

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "zimage.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
GPU_METRICS = ("zimage_gpu_utilization_ratio", "zimage_gpu_memory_used_bytes", "zimage_gpu_memory_total_bytes")
HOODIES = ["MH01-XS-Black", "MH01-S-Black"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    out = []
    for panel in panels:
        for child in [panel, *panel.get("panels", [])]:
            out += [(child["title"], target["expr"]) for target in child.get("targets", [])]
    return out


def has_gpu() -> bool:
    from resources.gpu_telemetry import read_gpus

    return bool(read_gpus())


class Prometheus:
    """A private Prometheus that scrapes one target every second and evaluates the project's rules."""

    def __init__(self, tmp_path, target_port: int) -> None:
        binary = require_binary("prometheus", "/usr/bin/prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{ALERTS}']\n"
            f"scrape_configs:\n  - job_name: zimage\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.log = tmp_path / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        wait_until(lambda: port_open(self.port), 60, "prometheus", self.log)

    def api(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=20) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture
def scraped(project, instance, tmp_path):
    """A real batch made and published, zimage-metrics serving it, a Prometheus with 5 s of scrapes."""
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    assert project.generate(batch_id).success
    instance.event_log_storage.set_concurrency_slots("gpu-tiny", 1)  # as `dagster instance concurrency set` does
    port = free_port()
    metrics = subprocess.Popen(
        [sys.executable, "-m", "zimage_assets.metrics_server", "--port", str(port), "--cache-seconds", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    prometheus = None
    try:
        wait_until(lambda: port_open(port), 60, "zimage-metrics")
        prometheus = Prometheus(tmp_path, port)
        wait_until(lambda: len(prometheus.query("count_over_time(up[1m])") or []) and
                   float(prometheus.query("count_over_time(up[1m])")[0]["value"][1]) >= 5, 60, "five scrapes", prometheus.log)
        assert prometheus.query("up")[0]["value"][1] == "1"
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        _stop(metrics)


def test_every_dashboard_query_and_alert_rule_works_against_real_prometheus(scraped):
    """One Prometheus for both halves (it takes a real batch and several scrapes to set up)."""
    _every_dashboard_query_returns_a_series(scraped)
    _every_alert_rule_loads_evaluates_and_reads_existing_metrics(scraped)


def _every_dashboard_query_returns_a_series(scraped):
    queries = dashboard_queries()
    assert len(queries) >= 20
    gpu_here = has_gpu()
    empty, present_without_gpu = [], []
    for title, expr in queries:
        result = scraped.query(expr)
        reads_gpu = any(name in expr for name in GPU_METRICS)
        if reads_gpu and not gpu_here:
            if result:
                present_without_gpu.append((title, expr))
        elif not result:
            empty.append((title, expr))
    assert empty == [], "panels with no data"
    assert present_without_gpu == [], "GPU series must be absent, not zero, without a GPU"


def _every_alert_rule_loads_evaluates_and_reads_existing_metrics(scraped):
    wait_until(lambda: scraped.api("rules")["data"]["groups"] and all(
        r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok"
        for g in scraped.api("rules")["data"]["groups"] for r in g["rules"]), 30, "rules evaluated")
    rules = [r for g in scraped.api("rules")["data"]["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} >= {"ZImageHighErrorRate", "ZImageHighP95Latency", "ZImageGPUOverload", "ZImageHighPriorityBacklog"}
    missing = []
    for rule in rules:
        scraped.query(rule["query"])  # evaluates without error (an empty result = not firing)
        for metric in sorted(set(re.findall(r"\b(zimage_[a-z0-9_]+)", rule["query"]))):
            if not scraped.query(metric):
                missing.append((rule["name"], metric))
    assert missing == []


def test_the_gpu_series_appear_where_nvml_reads_a_gpu():
    """Where a GPU exists the dashboard's GPU panels have data; here the reader must say there is none."""
    from resources.gpu_telemetry import read_gpus
    from resources.metrics import _gpu_families

    families = list(_gpu_families())
    if read_gpus():
        assert {f.name for f in families} == set(GPU_METRICS)
    else:
        assert families == []
        started = time.perf_counter()
        assert read_gpus() == []  # asked again: cached, cheap, never raises
        assert time.perf_counter() - started < 1.0
