"""Publishing the metrics after a run: a Prometheus text file and/or a Pushgateway push.

The numbers themselves come from `resources/metrics.py` (computed from durable state); this
resource only writes them out. A failure to publish is a warning, never a failed run.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, get_dagster_logger
from prometheus_client import push_to_gateway, write_to_textfile
from pydantic import Field

from resources.metrics import build_registry


class MetricsPublisher(ConfigurableResource):
    """Writes the metrics text file and/or pushes to a Pushgateway (ZIMAGE_METRICS_FILE, ZIMAGE_PUSHGATEWAY_URL)."""

    textfile_path: str = Field(default="", description="Prometheus text file rewritten after each run ('' = none)")
    pushgateway_url: str = Field(default="", description="Pushgateway that runs push to ('' = none)")
    push_job: str = Field(default="zimage", description="Pushgateway job (one group: pushes replace each other)")
    push_timeout_seconds: float = Field(default=5.0, gt=0)

    def publish(self, state_db, instance=None) -> list[str]:
        """Write the text file and/or push; returns where the metrics went."""
        if not (self.textfile_path or self.pushgateway_url):
            return []
        registry, _ = build_registry(state_db, instance, min_interval_seconds=0)
        done = []
        if self.textfile_path:
            try:
                Path(self.textfile_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                write_to_textfile(str(Path(self.textfile_path).expanduser()), registry)
                done.append(self.textfile_path)
            except OSError as exc:
                get_dagster_logger().warning(f"metrics file {self.textfile_path} not written: {exc}")
        if self.pushgateway_url:
            try:
                push_to_gateway(self.pushgateway_url, job=self.push_job, registry=registry, timeout=self.push_timeout_seconds)
                done.append(self.pushgateway_url)
            except Exception as exc:  # noqa: BLE001 - the Pushgateway being down must not fail a run
                get_dagster_logger().warning(f"metrics not pushed to {self.pushgateway_url}: {exc}")
        return done
