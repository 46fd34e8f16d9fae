"""Prometheus metrics: computed from durable state, exposed by scrape and/or pushed.

Every `zimage_*` metric is computed when it is collected, from the project's tables (one
`generation_runs` row per product_images run, receipts, verdicts) and from Dagster's own run
storage (the run queue, failed runs, concurrency pools). Nothing lives only in the memory of a
run's process, so counters stay exact however many runs, processes and machines there are, and
survive restarts. Each process builds its own `CollectorRegistry` (never the global default).

Three ways out, all with the same content:
- `zimage-metrics` (zimage_assets/metrics_server.py) serves /metrics for Prometheus to scrape;
  live queue lengths need this one;
- `MetricsPublisher.publish` (resources/metrics_publisher.py) after each product_images run: a
  Prometheus text file (the embedded default, for node_exporter's textfile collector) and/or a
  push to a Pushgateway. Pushes replace one group (`job`), so runs on many machines never add up
  twice.

This module is the read side only: it computes, it never writes.

Names and labels:
  zimage_requests_total{model,status,priority}   images asked for, by outcome (generated | cache_hit | already_stored)
  zimage_errors_total{error_type}                run_failed (Dagster), cache_unavailable
  zimage_inference_latency_seconds{model}        histogram of GPU seconds per generated image
  zimage_images_per_second{model}                generation speed of the model's latest run
  zimage_queue_length{priority}                  runs waiting in Dagster's run queue, plus requests (API, intake) no run holds yet
  zimage_generation_tasks, zimage_requests_waiting, zimage_intake_messages, zimage_request_to_published_seconds:
                                                 requests from other systems (resources/request_metrics.py; source "broker" above)
  zimage_queue_oldest_seconds{priority}          age of the oldest of them
  zimage_runs_in_progress{priority}              runs starting or running
  zimage_cache_hit_rate                          hits / lookups of the latest run that looked up
  zimage_cache_lookups_total{result}             hit | miss | error
  zimage_safety_blocks_total{stage}              items with a BLOCK verdict (prompt | image)
  zimage_gpu_seconds_total{model}, zimage_cost_usd_total{model}
  zimage_cost_per_1000_images_usd{model}         of the model's latest batch, from its receipts
  zimage_gpu_pool_slots{pool}, zimage_gpu_pool_slots_in_use{pool}, zimage_gpu_pool_pending_steps{pool}
  zimage_metrics_source_up{source}               1 when project_db / dagster could be read
  zimage_gpu_utilization_ratio{gpu,name}, zimage_gpu_memory_used_bytes{gpu,name},
  zimage_gpu_memory_total_bytes{gpu,name}        from NVML, on the machine the endpoint runs on;
                                                 absent (not zero) where there is no NVIDIA GPU
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

from dagster import get_dagster_logger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from resources.gpu_telemetry import read_gpus
from zimage_assets.domain.cost import LATENCY_BUCKETS, cumulative

PRIORITIES = ("high", "normal", "low")
REQUEST_STATUSES = ("generated", "cache_hit", "already_stored")


def priority_of(tags: dict[str, str]) -> str:
    """high / normal / low from a run's tags (`zimage/priority`, else the `dagster/priority` number)."""
    named = tags.get("zimage/priority")
    if named in PRIORITIES:
        return named
    try:
        value = int(tags.get("dagster/priority", "0"))
    except ValueError:
        return "normal"
    return "high" if value > 0 else "low" if value < 0 else "normal"


class ProjectCollector(Collector):
    """Collects every zimage_* metric from the project's tables and a Dagster instance.

    Results are kept `min_interval_seconds`, so frequent scrapes (or several Prometheus servers)
    cost the databases one round of queries per interval.
    """

    def __init__(self, state_db, instance=None, min_interval_seconds: float = 5.0, broker_depths=None):
        self.state_db = state_db
        self.instance = instance
        self.broker_depths = broker_depths  # the intake's RabbitMQ queue depths, where a broker is configured
        self.min_interval_seconds = min_interval_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.min_interval_seconds:
                self._cached = (now, list(self._compute()))
            families = self._cached[1]
        yield from families

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _compute(self) -> Iterator[Metric]:
        from resources.request_metrics import broker_family, request_families  # requests from other systems

        up = GaugeMetricFamily("zimage_metrics_source_up", "1 when the source could be read at the last collection", labels=["source"])
        waiting: dict[str, int] = {}  # asked for, in no run yet: part of the queue length
        try:
            families = list(self._from_tables())
            requests, waiting = request_families(self.state_db)
            families += requests
            up.add_metric(["project_db"], 1)
        except Exception as exc:  # noqa: BLE001 - a database outage must not break the endpoint
            get_dagster_logger().warning(f"metrics: project tables unreadable: {exc}")
            families = []
            up.add_metric(["project_db"], 0)
        if self.broker_depths is not None:
            try:
                broker, messages = broker_family(self.broker_depths)
                families += broker
                waiting = {p: waiting.get(p, 0) + messages.get(p, 0) for p in PRIORITIES}
                up.add_metric(["broker"], 1)
            except Exception as exc:  # noqa: BLE001
                get_dagster_logger().warning(f"metrics: intake broker unreadable: {exc}")
                up.add_metric(["broker"], 0)
        if self.instance is not None:
            try:
                dagster_families = list(self._from_dagster(waiting))
                up.add_metric(["dagster"], 1)
            except Exception as exc:  # noqa: BLE001
                get_dagster_logger().warning(f"metrics: Dagster instance unreadable: {exc}")
                dagster_families = []
                up.add_metric(["dagster"], 0)
        else:
            dagster_families = []
        yield from _merge(families + dagster_families)
        yield from _gpu_families()
        yield up

    # ---- from the project's tables ----

    def _from_tables(self) -> Iterator[Metric]:
        totals = self.state_db.generation_totals()
        latest = self.state_db.latest_generation_runs()
        blocks = self.state_db.verdict_counts("BLOCK")

        requests = CounterMetricFamily("zimage_requests", "Images asked for, by outcome", labels=["model", "status", "priority"])
        gpu = CounterMetricFamily("zimage_gpu_seconds", "GPU seconds spent generating", labels=["model"])
        cost = CounterMetricFamily("zimage_cost_usd", "Cost of GPU time spent generating (USD)", labels=["model"])
        lookups = CounterMetricFamily("zimage_cache_lookups", "Result cache lookups by result", labels=["result"])
        errors = CounterMetricFamily("zimage_errors", "Errors by type", labels=["error_type"])
        latency = HistogramMetricFamily("zimage_inference_latency_seconds", "GPU seconds per generated image", labels=["model"])

        per_model: dict[str, dict[str, float]] = {}
        cache = {"hit": 0, "miss": 0, "error": 0}
        for row in totals:
            for status, column in zip(REQUEST_STATUSES, ("generated", "cache_hits", "already_stored")):
                requests.add_metric([row["model_id"], status, row["priority"]], float(row[column] or 0))
            model = per_model.setdefault(row["model_id"], {"gpu": 0.0, "cost": 0.0, "latency_sum": 0.0})
            model["gpu"] += float(row["gpu_seconds"] or 0)
            model["cost"] += float(row["cost_usd"] or 0)
            model["latency_sum"] += float(row["latency_sum"] or 0)
            model["buckets"] = row["latency_counts_by_model"]
            cache["hit"] += int(row["cache_hits"] or 0)
            cache["miss"] += int(row["cache_misses"] or 0)
            cache["error"] += int(row["cache_errors"] or 0)
        for model_id, model in sorted(per_model.items()):
            gpu.add_metric([model_id], model["gpu"])
            cost.add_metric([model_id], model["cost"])
            counts = list(model.get("buckets") or [0] * (len(LATENCY_BUCKETS) + 1))
            counts += [0] * (len(LATENCY_BUCKETS) + 1 - len(counts))
            running = cumulative(counts)
            buckets = [(_le(bound), running[i]) for i, bound in enumerate(LATENCY_BUCKETS)] + [("+Inf", running[-1])]
            latency.add_metric([model_id], buckets, model["latency_sum"])
        for result, count in cache.items():
            lookups.add_metric([result], count)
        errors.add_metric(["cache_unavailable"], cache["error"])

        speed = GaugeMetricFamily("zimage_images_per_second", "Generation speed of the model's latest run", labels=["model"])
        per_1000 = GaugeMetricFamily(
            "zimage_cost_per_1000_images_usd", "Cost per 1000 delivered images of the model's latest batch (USD)", labels=["model"]
        )
        hit_rate = GaugeMetricFamily("zimage_cache_hit_rate", "Result cache hit rate of the latest run that looked up")
        latest_lookup = None
        for row in sorted(latest, key=lambda r: r["model_id"]):
            if row["generated"] and row["gpu_seconds"]:
                speed.add_metric([row["model_id"]], row["generated"] / row["gpu_seconds"])
            per_1000.add_metric([row["model_id"]], float(row["batch_cost_per_1000_images_usd"] or 0))
            if row["cache_hits"] + row["cache_misses"] and (latest_lookup is None or row["finished_at"] > latest_lookup["finished_at"]):
                latest_lookup = row
        hit_rate.add_metric(
            [], latest_lookup["cache_hits"] / (latest_lookup["cache_hits"] + latest_lookup["cache_misses"]) if latest_lookup else 0.0
        )

        safety = CounterMetricFamily("zimage_safety_blocks", "Items with a BLOCK verdict, by stage", labels=["stage"])
        for stage in sorted(set(blocks) | {"prompt", "image"}):
            safety.add_metric([stage], blocks.get(stage, 0))

        yield from (requests, errors, latency, speed, hit_rate, lookups, safety, gpu, cost, per_1000)

    # ---- from Dagster ----

    def _from_dagster(self, waiting: dict[str, int]) -> Iterator[Metric]:
        from dagster import DagsterRunStatus, RunsFilter

        now = time.time()
        queue = {p: waiting.get(p, 0) for p in PRIORITIES}
        oldest = {p: 0.0 for p in PRIORITIES}
        for record in self.instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.QUEUED])):
            priority = priority_of(record.dagster_run.tags)
            queue[priority] += 1
            created = record.create_timestamp.timestamp()
            oldest[priority] = max(oldest[priority], now - created)
        running = {p: 0 for p in PRIORITIES}
        active = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED]
        for run in self.instance.get_runs(filters=RunsFilter(statuses=active)):
            running[priority_of(run.tags)] += 1
        failed = self.instance.get_runs_count(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE]))

        length = GaugeMetricFamily(
            "zimage_queue_length", "Runs waiting in Dagster's run queue, plus requests no run holds yet", labels=["priority"]
        )
        age = GaugeMetricFamily("zimage_queue_oldest_seconds", "Age of the oldest queued run", labels=["priority"])
        progress = GaugeMetricFamily("zimage_runs_in_progress", "Runs starting or running", labels=["priority"])
        for priority in PRIORITIES:
            length.add_metric([priority], queue[priority])
            age.add_metric([priority], round(oldest[priority], 3))
            progress.add_metric([priority], running[priority])
        errors = CounterMetricFamily("zimage_errors", "Errors by type", labels=["error_type"])
        errors.add_metric(["run_failed"], failed)

        slots = GaugeMetricFamily("zimage_gpu_pool_slots", "Slots of a Dagster concurrency pool (GPUs)", labels=["pool"])
        in_use = GaugeMetricFamily("zimage_gpu_pool_slots_in_use", "Claimed slots of the pool", labels=["pool"])
        pending = GaugeMetricFamily("zimage_gpu_pool_pending_steps", "Steps waiting for a slot of the pool", labels=["pool"])
        storage = self.instance.event_log_storage
        for pool in sorted(storage.get_concurrency_keys()):
            info = storage.get_concurrency_info(pool)
            slots.add_metric([pool], info.slot_count if info.slot_count else (info.limit or 0))
            in_use.add_metric([pool], info.active_slot_count)
            pending.add_metric([pool], info.pending_step_count)
        yield from (length, age, progress, errors, slots, in_use, pending)


def _gpu_families() -> Iterator[Metric]:
    """This machine's GPUs (resources/gpu_telemetry.py); nothing at all where there are none."""
    readings = read_gpus()
    if not readings:
        return
    labels = ["gpu", "name"]
    util = GaugeMetricFamily("zimage_gpu_utilization_ratio", "Share of time a kernel ran on the GPU (NVML)", labels=labels)
    used = GaugeMetricFamily("zimage_gpu_memory_used_bytes", "GPU memory in use (NVML)", labels=labels)
    total = GaugeMetricFamily("zimage_gpu_memory_total_bytes", "GPU memory in all (NVML)", labels=labels)
    for gpu in readings:
        util.add_metric([gpu.index, gpu.name], gpu.utilization_ratio)
        used.add_metric([gpu.index, gpu.name], gpu.memory_used_bytes)
        total.add_metric([gpu.index, gpu.name], gpu.memory_total_bytes)
    yield from (util, used, total)


def _merge(families: list[Metric]) -> list[Metric]:
    """One family per name (errors come from both sources)."""
    merged: dict[str, Metric] = {}
    for family in families:
        if family.name in merged:
            merged[family.name].samples.extend(family.samples)
        else:
            merged[family.name] = family
    return list(merged.values())


def _le(bound: float) -> str:
    return repr(float(bound))


def build_registry(
    state_db, instance=None, min_interval_seconds: float = 5.0, broker_depths=None
) -> tuple[CollectorRegistry, ProjectCollector]:
    """A new registry holding the project collector (one per process: the server keeps its own)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = ProjectCollector(state_db, instance, min_interval_seconds, broker_depths)
    registry.register(collector)
    return registry, collector


def exposition(state_db, instance=None) -> bytes:
    """The Prometheus text exposition of every metric, computed now."""
    registry, _ = build_registry(state_db, instance, min_interval_seconds=0)
    return generate_latest(registry)
