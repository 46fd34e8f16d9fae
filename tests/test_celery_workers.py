"""One worker per GPU on dagster-celery, for real: a private RabbitMQ (the project's rabbitmq.conf,
its own vhost), two `zimage worker --gpu N` processes (CUDA_VISIBLE_DEVICES=0 and 1), one
`zimage worker --cpu`, and `generate_batch` runs of the tiny Z-Image whose steps go through Celery.

Two batches run at once on the two GPU workers; each worker loads the model once however many
batches it runs; high-priority batches overtake queued low ones; a worker SIGKILLed mid-batch
hands the batch to the other, which finishes it with no image lost or made twice; after a broker
restart the next batch runs; `scripts/workers` starts one worker per GPU and stops them. Which worker ran a step and whether it loaded the model is read from
the run's own events (dagster-celery's "Celery worker" metadata, the generator's load line).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from celery_harness import CeleryBox, PrivateRabbitMQ, materialization_metadata, step_executions
from conftest import REPO

GPU_QUEUE = "gpu-tiny"  # the GPU pool of ZIMAGE_MODEL=tiny, and so its Celery queue


@pytest.fixture(scope="module")
def rabbitmq():
    try:
        broker = PrivateRabbitMQ()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def box(rabbitmq, tmp_path_factory, models_dir):
    box = CeleryBox(rabbitmq, tmp_path_factory.mktemp("celery-box"), models_dir)
    box.cli("ingest")
    box.gpu = [box.start_worker("--gpu", str(i), name=f"gpu{i}") for i in (0, 1)]
    box.cpu = box.start_worker("--cpu", "--concurrency", "2", name="cpu")
    box.wait_ready(*box.gpu, box.cpu)
    yield box
    box.close()


def _run_all(box: CeleryBox, batch_ids: list[str]) -> list[dict]:
    procs = [box.launch(b) for b in batch_ids]
    results = [box.finish(p) for p in procs]
    assert all(r["success"] for r in results), results
    return results


def _wait_depth(box: CeleryBox, depth: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while box.queue_depth(GPU_QUEUE) < depth:
        assert time.monotonic() < deadline, f"{GPU_QUEUE} never held {depth} batches"
        time.sleep(0.2)


def test_the_broker_runs_with_the_projects_rabbitmq_config(rabbitmq, box):
    assert "{ok,21600000}" in rabbitmq.ctl("eval", "application:get_env(rabbit, consumer_timeout).")
    assert "{keepalive,true}" in rabbitmq.ctl("eval", "application:get_env(rabbit, tcp_listen_options).")
    arguments = rabbitmq.queue_arguments()
    for queue in (GPU_QUEUE, "zimage-cpu"):  # priority queues, as dagster-celery declares them
        assert ["x-max-priority", "signedint", 10] in arguments[queue], arguments


def test_two_batches_run_at_the_same_time_on_the_two_gpu_workers(box):
    first, second = box.mint(3), box.mint(3)
    box.pause(GPU_QUEUE, *box.gpu)  # both batches wait in the queue, then both workers start at once
    procs = [box.launch(first), box.launch(second)]
    _wait_depth(box, 2)
    box.resume(GPU_QUEUE, *box.gpu)
    results = [box.finish(p) for p in procs]
    assert all(r["success"] for r in results)

    instance = box.instance()
    runs = [step_executions(instance, r["run_id"]) for r in results]
    assert [len(r) for r in runs] == [1, 1]  # each batch ran once: no redelivery
    (a,), (b,) = runs
    assert {a["worker"], b["worker"]} == {w.hostname() for w in box.gpu}
    assert max(a["at"], b["at"]) < min(a["ended"], b["ended"])  # at the same time


def test_high_priority_batches_overtake_queued_low_ones(box):
    low = [box.mint(1, priority="low") for _ in range(2)]
    high = box.mint(1, priority="high")
    box.pause(GPU_QUEUE, *box.gpu)
    procs = [box.launch(b) for b in low]
    _wait_depth(box, 2)  # both low batches are queued first ...
    procs.append(box.launch(high))
    _wait_depth(box, 3)  # ... then the high one
    box.resume(GPU_QUEUE, box.gpu[0])  # one GPU frees up: which batch does it take?
    results = [box.finish(p) for p in procs]
    box.resume(GPU_QUEUE, box.gpu[1])

    instance = box.instance()
    order = sorted(results, key=lambda r: step_executions(instance, r["run_id"])[0]["at"])
    tags = [instance.get_run_by_id(r["run_id"]).tags for r in order]
    assert [t["zimage/priority"] for t in tags] == ["high", "low", "low"]
    assert [t["dagster-celery/run_priority"] for t in tags] == ["4", "-4", "-4"]
    assert {step_executions(instance, r["run_id"])[0]["worker"] for r in results} == {box.gpu[0].hostname()}


def test_each_gpu_worker_loads_the_model_once_for_all_its_batches(box):
    def per_worker():
        instance = box.instance()
        executions = [e for run_id in box.run_ids for e in step_executions(instance, run_id)]
        return {w.hostname(): [e for e in executions if e["worker"] == w.hostname()] for w in box.gpu}

    while min(len(e) for e in per_worker().values()) < 3:  # several batches on each worker
        _run_all(box, [box.mint(1), box.mint(1)])
    for worker, executions in per_worker().items():
        assert sum(e["loaded_model"] for e in executions) == 1, (worker, executions)
        assert executions[0]["loaded_model"]  # at its first batch, never again


def test_a_worker_killed_mid_batch_hands_the_batch_to_the_other(box):
    batch_id = box.mint(5)  # ~20 images, stored one by one
    victim, survivor = box.gpu
    box.pause(GPU_QUEUE, survivor)  # the batch starts on the victim
    proc = box.launch(batch_id)
    state_db, instance = box.state_db(), box.instance()
    deadline = time.monotonic() + 180
    while len(state_db.receipts(batch_id, latest_only=False)) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "the batch never started"
        time.sleep(0.05)
    box.resume(GPU_QUEUE, survivor)
    before = {(r["sku"], r["view"], r["attempt"]): (r["sha256"], r["created_at"]) for r in state_db.receipts(batch_id, latest_only=False)}
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.time()
    result = box.finish(proc)
    print(f"\nworker killed after {len(before)} images; batch finished on the other worker {result['ended'] - killed:.1f}s later")
    box.gpu[0] = box.restart_worker(victim)

    assert result["success"]
    first, second = step_executions(instance, result["run_id"])
    assert (first["worker"], first["ended"]) == (victim.hostname(), None)  # died in the middle
    assert second["worker"] == survivor.hostname() and second["ended"] is not None
    after = state_db.receipts(batch_id, latest_only=False)
    items = state_db.batch_items(batch_id)
    assert {(r["sku"], r["view"]) for r in after} == {(i["sku"], i["view"]) for i in items}  # none lost
    assert all(before[k] == (r["sha256"], r["created_at"]) for r in after if (k := (r["sku"], r["view"], r["attempt"])) in before)
    metadata = materialization_metadata(instance, result["run_id"])
    assert metadata["already_stored"] >= len(before)  # resumed, not made again
    assert metadata["already_stored"] + metadata["generated"] + metadata["cache_hits"] + metadata["shared_specs"] == metadata["items"]
    files = list((Path(box.env["ZIMAGE_HOME"]) / "images" / "images").rglob("*.png"))
    stored = {f.stem for f in files}
    assert {r["sha256"] for r in after} <= stored  # every receipt's image is there, each once (content-addressed)


def test_the_next_batch_runs_after_a_broker_restart(box, rabbitmq):
    pids = [w.pid for w in box.workers if w.alive()]
    took = rabbitmq.restart()
    print(f"\nRabbitMQ back after {took:.1f}s")
    (result,) = _run_all(box, [box.mint(1)])
    assert [w.pid for w in box.workers if w.alive()] == pids  # the same workers reconnected
    (execution,) = step_executions(box.instance(), result["run_id"])
    assert execution["worker"] in {w.hostname() for w in box.gpu}


def test_scripts_workers_starts_one_worker_per_gpu_and_stops_them(box):
    script = [str(REPO / "scripts" / "workers")]
    run_dir = Path(box.env["ZIMAGE_HOME"]) / "workers"

    def workers(*args):
        done = subprocess.run(script + list(args), env=box.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = workers("start", "--gpus", "5,6", "--cpu", "0")
    assert "gpu5: started" in out and "gpu6: started" in out
    pids = {gpu: int((run_dir / f"gpu{gpu}.pid").read_text()) for gpu in (5, 6)}
    deadline = time.monotonic() + 180
    while not all(" ready." in (run_dir / f"gpu{gpu}.log").read_text(errors="replace") for gpu in pids):
        assert time.monotonic() < deadline, [(run_dir / f"gpu{g}.log").read_text(errors="replace")[-2000:] for g in pids]
        time.sleep(0.25)
    host = socket.gethostname()
    names = [f"gpu-tiny-gpu{gpu}@{host}" for gpu in (5, 6)]
    assert box.ping(names) == set(names)
    assert "already running" in workers("start", "--gpus", "5", "--cpu", "0")  # idempotent
    assert workers("status").count(": running") == 2
    workers("stop")
    for pid in pids.values():  # gone (or a zombie waiting to be reaped by init)
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().split(") ", 1)[1].startswith("Z")
    assert not list(run_dir.glob("*.pid"))
