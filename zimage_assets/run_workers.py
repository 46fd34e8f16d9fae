"""Run workers: the process that executes a Dagster run, and whether it is still alive.

A run whose worker was killed (kill -9, the out-of-memory killer, a crashed machine) stays
STARTED in Dagster's run storage for ever. With `pools: granularity: run` the run queue counts a
pool's active runs, so such a run holds its GPU pool's slot and every later GPU run waits behind
it. Dagster's run monitoring daemon fails runs whose worker is gone, but only when the run
launcher can check workers, and Dagster's DefaultRunLauncher cannot. So:

- `LivenessRunLauncher` (`run_launcher` in dagster.yaml) is DefaultRunLauncher plus
  `check_run_worker_health`: the monitoring daemon asks it about every STARTED run each
  `run_monitoring.poll_interval_seconds`, and fails (then retries, `run_retries`) the runs whose
  worker is gone; the failure frees the pool and the run-failure sensor marks the batch failed.
- A run's worker: a run executed by the `zimage` command carries the tag `zimage/run_worker`
  (host:pid:start time); a run launched through a code server has the engine event "Started
  process for run (pid: N)" that Dagster's run worker writes, on the code server's host (its
  gRPC tag). The worker is gone when no live process (a zombie counts as gone) with that pid,
  started before then, exists on that host. A worker on another host, or one that cannot be
  identified, is not judged: reported RUNNING, so monitoring leaves the run alone (Kubernetes
  and other launchers check their own workers).
- `run_is_live` is that judgement for code that must know whether a run still holds something:
  the one-run-per-batch claim and the CLI waiting for its GPU pool. A run found dead is marked
  failed at once, as the monitoring daemon would.
- `before_cli_run`: the CLI executes runs in its own process, where Dagster skips the pool claim
  under `granularity: run` (the queue enforces it when dequeuing), so the CLI first waits until
  its GPU pool has a free slot, counting the pool's active runs as the run queue does, and
  refuses a batch that another live run is generating. (A CLI run that starts in the same
  second as the queue dequeues a run of the same pool may still share the GPU with it; the
  batch claim keeps two runs off one batch whatever the timing.)
"""

from __future__ import annotations

import json
import os
import socket
import time
from functools import partial
from typing import Callable

import dagster as dg
import psutil
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES
from dagster._core.storage.tags import GRPC_INFO_TAG

from resources.state_db import StateDB

WORKER_TAG = "zimage/run_worker"
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "0.0.0.0"}
_CLOCK_SLACK_SECONDS = 2.0
_PENDING = (dg.DagsterRunStatus.NOT_STARTED, *ACTIVE_RUN_STATUSES)  # created, starting, running, canceling


def this_worker() -> str:
    """The `zimage/run_worker` tag of a run this process executes: host:pid:process start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.2f}"


def _worker_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[str, int, float, bool] | None:
    """(host, pid, time, exact) of the run's worker: `exact` means `time` is the process's start
    time; otherwise the worker must have started before `time`. None when it is not known."""
    tag = run.tags.get(WORKER_TAG)
    if tag:
        host, pid, started = tag.rsplit(":", 2)
        return host, int(pid), float(started), True
    grpc = run.tags.get(GRPC_INFO_TAG)
    if not grpc:
        return None
    host = str(json.loads(grpc).get("host") or "")
    host = socket.gethostname() if host in _LOCAL_HOSTS else host
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:  # the first engine event with a pid: "Started process for run (pid: N)."
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if "pid" in metadata:
            return host, int(metadata["pid"].value), record.event_log_entry.timestamp, False
    return None


def _process_alive(pid: int, when: float, exact: bool) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists; we may not look at it
        return True
    if exact:
        return abs(created - when) < _CLOCK_SLACK_SECONDS
    return created <= when + _CLOCK_SLACK_SECONDS  # a pid reused by a later process is not the worker


def worker_health(instance: dg.DagsterInstance, run: dg.DagsterRun) -> CheckRunHealthResult:
    """RUNNING, or FAILED when the run's worker process is known to be gone."""
    worker = _worker_of(instance, run)
    if worker is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: the run records no worker process")
    host, pid, when, exact = worker
    if host != socket.gethostname():
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"not checked: its worker runs on {host}")
    if _process_alive(pid, when, exact):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} is alive", run_worker_id=str(pid))
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the run's worker process (pid {pid} on {host}) is gone: killed (kill -9, the out-of-memory killer) or crashed",
        run_worker_id=str(pid),
    )


class LivenessRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers Dagster's run monitoring can check (see the module)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return worker_health(self._instance, run)


def run_is_live(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Is this run still running (or about to)? A run whose worker is gone is marked failed now."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.dagster_run.status not in _PENDING:
        return False
    health = worker_health(instance, record.dagster_run)
    if health.status == WorkerStatus.FAILED:
        instance.report_run_failed(record.dagster_run, f"Detected run worker status {health}. Marking run {run_id} as failed.")
        return False
    return True


def claim_batch_or_fail(context: dg.AssetExecutionContext, state_db: StateDB, batch_id: str) -> None:
    """This run takes the batch; another live run holding it stops this one (one run per batch)."""
    holder = state_db.claim_batch(batch_id, context.run_id, partial(run_is_live, context.instance))
    if holder is not None:
        raise dg.Failure(
            description=f"batch {batch_id} is being generated by run {holder}, which is still running; "
            "it is not generated twice (wait for that run, or see it in the Dagster UI)",
            allow_retries=False,
        )


def pool_runs(instance: dg.DagsterInstance, pool: str) -> list[dg.DagsterRun]:
    """Runs that hold a slot of this pool now (active runs whose steps use it), as the run queue counts."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(ACTIVE_RUN_STATUSES)))
    return [r for r in runs if r.run_op_concurrency is not None and pool in (r.run_op_concurrency.all_pools or ())]


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The pool's slot count (`dagster instance concurrency set`), else the default limit; None = unlimited."""
    storage = instance.event_log_storage
    if pool in storage.get_concurrency_keys():
        return storage.get_concurrency_info(pool).slot_count
    return instance.global_op_concurrency_default_limit


class BatchBusy(Exception):
    """Another live run is generating the batch."""


def before_cli_run(
    instance: dg.DagsterInstance,
    state_db: StateDB,
    batch_id: str,
    pool: str | None,
    *,
    say: Callable[[str], None],
    poll_seconds: float = 2.0,
) -> dict[str, str]:
    """What the `zimage` command does before it executes a batch's run in its own process.

    Refuses (BatchBusy) while another live run generates the batch; waits, as the run queue makes
    queued runs wait, until the GPU pool has a free slot (runs holding it whose worker is gone are
    failed, with their batches); returns the tags that make the run's worker checkable."""
    told = False
    while True:
        for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}, statuses=list(_PENDING))):
            if run.job_name == "generate_batch" and run_is_live(instance, run.run_id):
                raise BatchBusy(f"batch {batch_id} is already being generated by run {run.run_id}; it is not generated twice "
                                "(wait for that run, or see it in the Dagster UI)")
        limit = pool_limit(instance, pool) if pool else None
        holders = []
        for run in pool_runs(instance, pool) if limit is not None else []:
            if run_is_live(instance, run.run_id):
                holders.append(run)
                continue
            held = run.tags.get("zimage/batch") or run.tags.get("dagster/partition")
            failed = held is not None and state_db.mark_batch_failed(held, run.run_id, partial(run_is_live, instance))
            say(f"run {run.run_id} had no live worker (killed?): marked failed" + (f", and its batch {held}" if failed else ""))
        if limit is None or len(holders) < limit:
            return {WORKER_TAG: this_worker()}
        if not told:
            busy = ", ".join(f"{r.run_id[:8]} ({r.tags.get('zimage/batch') or r.job_name})" for r in holders[:3])
            say(f"waiting for GPU pool {pool}: {len(holders)} of {limit} slot(s) in use by run(s) {busy} ...")
            told = True
        time.sleep(poll_seconds)
