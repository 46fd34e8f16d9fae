"""Dagster's own daemons, driven step by step in the test process against a real instance.

`project_instance()` is a real SQLite instance configured with the repository's dagster.yaml
(QueuedRunCoordinator, pools, run limits, run monitoring); only the run launcher differs:
Dagster's SyncInMemoryRunLauncher (with the project's worker check) executes a dequeued run
right away in this process, so a test sees the real run and its events without spawning a
process per run. `code_location()` loads
zimage_assets.definitions in process (freshly, so resources follow this test's environment).
`sensor_daemon_iteration`, `run_queue_iteration` and `run_monitoring_iteration` are one pass of
the sensor daemon, of the queued-run coordinator daemon and of the run monitoring daemon.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration

REPO = Path(__file__).resolve().parents[1]
LOCATION = "zimage_assets"
_LOG = logging.getLogger("zimage-tests-daemon")


class SyncLivenessRunLauncher(SyncInMemoryRunLauncher):
    """SyncInMemoryRunLauncher with the project's check of run workers (what LivenessRunLauncher
    adds to Dagster's DefaultRunLauncher), so run monitoring can be driven in tests."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run):
        from zimage_assets.run_workers import worker_health

        return worker_health(self._instance, run)


def project_instance_config() -> dict:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    return {
        "run_coordinator": config["run_coordinator"],
        "concurrency": config["concurrency"],
        "run_monitoring": config["run_monitoring"],
        "run_launcher": {"module": "daemon_harness", "class": "SyncLivenessRunLauncher"},
    }


@contextmanager
def project_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides=project_instance_config()) as instance:
        yield instance


@contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    for name in [m for m in sys.modules if m == "zimage_assets.definitions"]:
        del sys.modules[name]  # rebuild resources from this test's environment
    # Runs executed in this process keep their job's last definition (lru_cache on the
    # reconstructable job): drop it, or the next test's runs would use an earlier test's resources.
    ReconstructableJob.get_repository_definition.cache_clear()
    ReconstructableJob.get_definition.cache_clear()
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="zimage_assets.definitions", working_directory=str(REPO)),
        location_name=LOCATION,
    )
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as context:
        entry = next(iter(context.create_request_context().get_code_location_entries().values()))
        assert entry.code_location is not None, entry.load_error
        yield context


def remote_sensor(context: WorkspaceProcessContext, name: str):
    location = context.create_request_context().get_code_location(LOCATION)
    return location.get_repository("__repository__").get_sensor(name)


def start_sensor(context: WorkspaceProcessContext, name: str) -> None:
    context.instance.start_sensor(remote_sensor(context, name))


def stop_sensor(context: WorkspaceProcessContext, name: str) -> None:
    sensor = remote_sensor(context, name)
    context.instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)


def sensor_daemon_iteration(context: WorkspaceProcessContext) -> None:
    list(execute_sensor_iteration(context, _LOG, threadpool_executor=None, submit_threadpool_executor=None))


def run_monitoring_iteration(context: WorkspaceProcessContext) -> None:
    list(execute_run_monitoring_iteration(context, _LOG))


def run_queue_iteration(context: WorkspaceProcessContext) -> None:
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        list(daemon.run_iteration(context))


def project_definitions(resources: dict) -> dg.Definitions:
    """The code location's definitions, with these resources."""
    from jobs import ALL_JOBS
    from sensors import ALL_SCHEDULES, ALL_SENSORS
    from zimage_assets.assets import ALL_ASSETS
    from zimage_assets.checks import ALL_CHECKS

    return dg.Definitions(
        assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=ALL_JOBS, sensors=ALL_SENSORS, schedules=ALL_SCHEDULES, resources=resources
    )


def evaluate_sensor(sensor: dg.SensorDefinition, project, cursor: str | None = None):
    """One evaluation of a sensor, as the sensor daemon makes it; returns what the daemon would submit."""
    with dg.build_sensor_context(
        instance_ref=project.instance.get_ref(), definitions=project_definitions(project.resources), resources=project.resources, cursor=cursor
    ) as context:
        return sensor.evaluate_tick(context)
