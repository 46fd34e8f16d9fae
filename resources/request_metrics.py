"""Metrics of requests from other systems (the generations API, the RabbitMQ intake), from the
project's tables (and, where configured, the broker), for resources/metrics.py's collector.

  zimage_generation_tasks{status,priority,source}     tasks by status as clients see it (queued | running | succeeded | failed | blocked)
  zimage_requests_waiting{priority}                   recorded requests no batch holds yet
  zimage_intake_messages{priority}                    messages ready in the intake's RabbitMQ queues (only with a broker)
  zimage_request_to_published_seconds{priority}       histogram: from the request to its batch's publication

zimage_queue_length{priority} (resources/metrics.py) adds the waiting requests and the intake's
messages to the runs in Dagster's queue: everything asked for that no run is making yet.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

PRIORITIES = ("high", "normal", "low")
PUBLISH_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


def request_families(state_db) -> tuple[list[Metric], dict[str, int]]:
    """The request metrics, and the waiting requests per priority (for zimage_queue_length)."""
    tasks = GaugeMetricFamily("zimage_generation_tasks", "Requests from other systems by task status", labels=["status", "priority", "source"])
    for row in state_db.task_counts():
        tasks.add_metric([row["status"], row["priority"], row["source"]], row["tasks"])
    waiting = {p: 0 for p in PRIORITIES}
    waiting.update(state_db.waiting_requests())
    gauge = GaugeMetricFamily("zimage_requests_waiting", "Recorded requests that no batch holds yet", labels=["priority"])
    for priority in PRIORITIES:
        gauge.add_metric([priority], waiting[priority])
    latency = HistogramMetricFamily(
        "zimage_request_to_published_seconds", "Seconds from a request to the publication of its batch", labels=["priority"]
    )
    for row in state_db.publish_latency_buckets(PUBLISH_BUCKETS):
        buckets = [(repr(bound), float(row[f"le_{i}"] or 0)) for i, bound in enumerate(PUBLISH_BUCKETS)] + [("+Inf", float(row["count"]))]
        latency.add_metric([row["priority"]], buckets, float(row["sum"] or 0))
    return [tasks, gauge, latency], waiting


def broker_family(depths: Callable[[], dict[str, int]] | None) -> tuple[list[Metric], dict[str, int]]:
    """Messages ready in the intake's queues (nothing when no broker is configured)."""
    if depths is None:
        return [], {}
    counts = depths()
    family = GaugeMetricFamily("zimage_intake_messages", "Messages ready in the intake's RabbitMQ queues", labels=["priority"])
    for priority in PRIORITIES:
        family.add_metric([priority], counts.get(priority, 0))
    return [family], {p: counts.get(p, 0) for p in PRIORITIES}
