"""A killed run never wedges the GPU pool, never leaves its batch `running`, and two runs never
generate one batch: real `zimage` processes killed with SIGKILL, Dagster's own run monitoring,
sensor and run queue daemons driven step by step on a real instance."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from dagster._core.utils import make_new_run_id

from conftest import REPO, Project
from daemon_harness import (
    code_location,
    evaluate_sensor,
    project_instance_config,
    run_monitoring_iteration,
    run_queue_iteration,
    sensor_daemon_iteration,
)

HOODIE, TEE = "MH01-XS-Black", "MS01-XS-Black"
POOL = "gpu-tiny"


@pytest.fixture
def home(project_env, tmp_path):
    """A DAGSTER_HOME configured like the repository's dagster.yaml (queue, pools, monitoring)."""
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text(yaml.safe_dump({**project_instance_config(), "telemetry": {"enabled": False}}))
    env = {**os.environ, **project_env, "DAGSTER_HOME": str(folder), "PYTHONPATH": str(REPO / "tests")}
    return env


def _zimage(env, *args):
    return subprocess.run([sys.executable, "-m", "zimage_assets.cli", *args], env=env, capture_output=True, text=True, timeout=600)


def _start(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zimage_assets.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mint(env, sku: str) -> str:
    done = _zimage(env, "mint", "--sku", sku)
    assert done.returncode == 0, done.stderr
    return re.search(r"minted 1 batch\(es\): (\S+)", done.stdout).group(1)


def _state_db(env):
    from resources.state_db import StateDB

    return StateDB(url=f"sqlite:///{Path(env['ZIMAGE_HOME']) / 'zimage.sqlite'}")


def _instance(env) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _run_of(instance, batch_id: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}))
    return runs[0] if runs else None


def _kill_while_generating(env, batch_id: str) -> dg.DagsterRun:
    """Start `zimage run BATCH`, SIGKILL it once its run has started; the run it left behind."""
    proc = _start(env, "run", batch_id)
    db = _state_db(env)
    deadline = time.time() + 300
    with _instance(env) as instance:
        while time.time() < deadline:
            run = _run_of(instance, batch_id)
            if run is not None and run.status == dg.DagsterRunStatus.STARTED and db.batch(batch_id)["status"] == "running":
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        run = instance.get_run_by_id(run.run_id)
    assert run.status == dg.DagsterRunStatus.STARTED  # what a killed worker leaves behind
    assert db.batch(batch_id)["status"] == "running"
    return run


def test_a_killed_cli_run_is_failed_by_run_monitoring_and_the_queue_moves_on(home, project_env):
    from resources import build_resources
    from sensors.alerts import run_failure_alert_sensor
    from zimage_assets.settings import Settings

    assert _zimage(home, "ingest").returncode == 0
    killed_batch, waiting_batch = _mint(home, HOODIE), _mint(home, TEE)
    with _instance(home) as instance:
        project = Project(build_resources(Settings.from_env(home)), instance)
        watching = evaluate_sensor(run_failure_alert_sensor, project)  # watches failures from now on
    dead = _kill_while_generating(home, killed_batch)
    assert dead.tags["zimage/run_worker"].startswith(f"{socket.gethostname()}:")

    with _instance(home) as instance, code_location(instance) as workspace:
        project = Project(build_resources(Settings.from_env(home)), instance)
        sensor_daemon_iteration(workspace)  # minted_batches_sensor queues the other batch
        run_queue_iteration(workspace)
        queued = _run_of(instance, waiting_batch)
        assert queued.status == dg.DagsterRunStatus.QUEUED  # the dead run still holds the only GPU slot

        run_monitoring_iteration(workspace)
        failed = instance.get_run_by_id(dead.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        (failure,) = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"pid {dead.tags['zimage/run_worker'].split(':')[1]}" in failure.message and "is gone" in failure.message

        evaluate_sensor(run_failure_alert_sensor, project, watching.cursor)
        assert project.state_db.batch(killed_batch)["status"] == "failed"  # never left `running`

        run_queue_iteration(workspace)  # the slot is free: the waiting batch runs now
        assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert project.state_db.batch(waiting_batch)["status"] == "published"

    resumed = _zimage(home, "run", killed_batch)  # and the killed batch resumes from what it stored
    assert resumed.returncode == 0, resumed.stderr
    assert _state_db(home).batch(killed_batch)["status"] == "published"


def test_without_a_daemon_the_next_cli_run_fails_a_dead_holder_and_takes_the_pool(home):
    assert _zimage(home, "ingest").returncode == 0
    killed_batch, next_batch = _mint(home, HOODIE), _mint(home, TEE)
    dead = _kill_while_generating(home, killed_batch)

    done = _zimage(home, "run", next_batch)
    assert done.returncode == 0, done.stderr
    assert f"run {dead.run_id} had no live worker (killed?): marked failed, and its batch {killed_batch}" in done.stderr
    with _instance(home) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    db = _state_db(home)
    assert db.batch(killed_batch)["status"] == "failed" and db.batch(next_batch)["status"] == "published"


@pytest.mark.parametrize("slots", [1, 2])
def test_two_concurrent_runs_of_one_batch_never_both_generate_it(home, slots):
    assert _zimage(home, "ingest").returncode == 0
    batch_id = _mint(home, HOODIE)
    with _instance(home) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, slots)
    procs = [_start(home, "run", batch_id) for _ in range(2)]
    outcomes = [(p.wait(timeout=600), *p.communicate()) for p in procs]

    generated = [int(m.group(1)) for _, out, _ in outcomes for m in [re.search(r"-> (\d+) generated", out)] if m]
    refused = [err for code, _, err in outcomes if code != 0]
    assert all("already being generated by run" in err or "is being generated by run" in err for err in refused), refused
    assert len(generated) + len(refused) == 2 and len(generated) >= 1
    assert sorted(generated)[:-1] == [0] * (len(generated) - 1)  # at most one run made images
    assert sorted(generated)[-1] > 0
    db = _state_db(home)
    assert db.batch(batch_id)["status"] == "published"
    assert len(db.receipts(batch_id, latest_only=False)) == len(db.batch_items(batch_id))


def test_worker_health_tells_live_killed_zombie_and_reused_workers_apart():
    from dagster._core.launcher import WorkerStatus

    from zimage_assets.run_workers import worker_health

    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = psutil.Process(child.pid).create_time()

    def status(tag: str) -> WorkerStatus:
        run = dg.DagsterRun(job_name="generate_batch", run_id=make_new_run_id(), tags={"zimage/run_worker": tag})
        with dg.instance_for_test() as instance:
            return worker_health(instance, run).status

    try:
        assert status(f"{host}:{child.pid}:{started:.2f}") == WorkerStatus.RUNNING
        assert status(f"{host}:{child.pid}:{started - 3600:.2f}") == WorkerStatus.FAILED  # the pid was reused
        assert status(f"another-host:{child.pid}:{started:.2f}") == WorkerStatus.RUNNING  # not ours to judge
        child.send_signal(signal.SIGKILL)
        time.sleep(0.5)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped
        assert status(f"{host}:{child.pid}:{started:.2f}") == WorkerStatus.FAILED
    finally:
        child.kill()
        child.wait()
    assert status(f"{host}:{child.pid}:{started:.2f}") == WorkerStatus.FAILED  # gone


def test_both_instance_files_monitor_runs_with_the_liveness_launcher(project_env):
    from zimage_assets.run_workers import LivenessRunLauncher

    for path in (REPO / "dagster.yaml", REPO / "deploy" / "dagster.postgres.yaml"):
        config = yaml.safe_load(path.read_text())
        assert config["run_launcher"] == {"module": "zimage_assets.run_workers", "class": "LivenessRunLauncher"}, path
        assert config["run_monitoring"]["enabled"] is True and config["run_monitoring"]["max_resume_run_attempts"] == 0
        assert {"key": "zimage/batch", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides={k: config[k] for k in ("run_launcher", "run_monitoring")}) as instance:
        assert isinstance(instance.run_launcher, LivenessRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health and instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["poll_interval_seconds"] == 30


@pytest.mark.filterwarnings("ignore:Error loading repository location")  # while the code server starts
def test_a_sensor_launched_run_whose_worker_is_killed_is_failed_and_the_next_batch_runs(home, tmp_path):
    """The production path: the real LivenessRunLauncher (Dagster's DefaultRunLauncher) starts run
    workers through a real code server; the run worker is killed with SIGKILL (as the OOM killer
    would); run monitoring fails the run and the queue moves on."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import GrpcServerTarget

    from servers import free_port

    config = yaml.safe_load((REPO / "dagster.yaml").read_text())  # the shipped file, launcher included
    (Path(home["DAGSTER_HOME"]) / "dagster.yaml").write_text(yaml.safe_dump(config))
    assert _zimage(home, "ingest").returncode == 0
    first, second = _mint(home, HOODIE), _mint(home, TEE)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "--module-name", "zimage_assets.definitions", "--host", "127.0.0.1", "--port", str(port)],
        env=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with _instance(home) as instance:
            target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name="zimage_assets")
            deadline = time.time() + 180
            while True:  # the code server loads the definitions
                try:
                    workspace = WorkspaceProcessContext(instance, target)
                    entry = next(iter(workspace.create_request_context().get_code_location_entries().values()))
                    if entry.code_location is not None:
                        break
                    workspace.__exit__(None, None, None)
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                assert time.time() < deadline and server.poll() is None, "code server did not start"
                time.sleep(1)
            with workspace:
                sensor_daemon_iteration(workspace)  # queues both batches
                run_queue_iteration(workspace)  # one GPU slot: the first starts, the second waits
                launched, waiting = _run_of(instance, first), _run_of(instance, second)
                assert waiting.status == dg.DagsterRunStatus.QUEUED
                pid = None
                while pid is None or instance.get_run_by_id(launched.run_id).status != dg.DagsterRunStatus.STARTED:
                    assert time.time() < deadline + 300, "the run did not start"
                    for record in instance.get_records_for_run(launched.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
                        metadata = record.event_log_entry.dagster_event.event_specific_data.metadata or {}
                        pid = pid or (int(metadata["pid"].value) if "pid" in metadata else None)
                    time.sleep(0.5)
                os.kill(pid, signal.SIGKILL)  # the run worker, as the out-of-memory killer would
                time.sleep(1)
                run_monitoring_iteration(workspace)
                assert instance.get_run_by_id(launched.run_id).status == dg.DagsterRunStatus.FAILURE
                run_queue_iteration(workspace)
                while instance.get_run_by_id(waiting.run_id).status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
                    assert time.time() < deadline + 900, "the waiting batch never ran"
                    time.sleep(1)
                assert instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.SUCCESS
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_a_batch_claim_is_taken_over_only_from_a_run_that_ended_and_failures_respect_it(project):
    project.ingest()
    (batch_id,) = project.mint(skus=[HOODIE])
    db, alive = project.state_db, {"run-a": True}
    assert db.claim_batch(batch_id, "run-a", alive.get) is None
    assert db.claim_batch(batch_id, "run-b", alive.get) == "run-a"  # a live holder keeps it
    assert not db.mark_batch_failed(batch_id, "run-b", alive.get)  # the refused run fails nothing
    assert db.batch(batch_id)["status"] == "minted"
    alive["run-a"] = False
    assert db.claim_batch(batch_id, "run-b", alive.get) is None and db.batch_claim(batch_id) == "run-b"
    assert db.mark_batch_failed(batch_id, "run-b", alive.get) and db.batch(batch_id)["status"] == "failed"
