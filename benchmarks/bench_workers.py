"""One GPU worker vs two on dagster-celery, and how long a killed worker's batch takes to finish elsewhere.

    .venv/bin/python benchmarks/bench_workers.py [--batches 8] [--skus 2] [--kills 3]

On a private RabbitMQ (the project's deploy/rabbitmq config) with real `zimage worker` processes
and the tiny Z-Image on the CPU (one core per pretend GPU: OMP_NUM_THREADS=1), as the tests run
them (tests/celery_harness.py):

  throughput  the same N batches (--batches, of --skus SKUs each) generated with one GPU worker,
              then regenerated (force) with two fresh ones. The batches are queued first with the
              workers paused, so the time measured is the GPU stage only: from releasing the
              workers to the last batch's product_images step ending. Prints batches/min, the
              two-to-one ratio, model loads (one per worker; one per batch, N, with the in-process
              executor) and the load and per-batch seconds, with the batches-per-run that a pod per
              step would need for the load to cost at most 5 % (zimage_assets/domain/placement.py).
  failover    --kills times: a batch starts on worker A, A is SIGKILLed after a few images, B
              (idle) takes it over: seconds from the kill to B starting the step, and to B
              finishing it, with the images left to make.

Figures are from one machine, shared and noisy: compare the ratios within one run. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from celery_harness import CeleryBox, PrivateRabbitMQ, step_executions  # noqa: E402

QUEUE = "gpu-tiny"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def _gpu_stage(box: CeleryBox, workers, batch_ids: list[str], force: bool) -> dict:
    """Queue every batch's GPU step with the workers paused, release them, time the GPU stage."""
    box.pause(QUEUE, *workers)
    procs = [box.launch(b, force=force) for b in batch_ids]
    _wait(lambda: box.queue_depth(QUEUE) >= len(batch_ids), 600, "batches never all queued")
    released = time.time()
    box.resume(QUEUE, *workers)
    results = [box.finish(p, timeout=1200) for p in procs]
    instance = box.instance()
    executions = [e for r in results for e in step_executions(instance, r["run_id"])]
    end = max(e["ended"] for e in executions)
    loads = [e for e in executions if e["loaded_model"]]
    per_batch = [e["ended"] - e["at"] for e in executions if not e["loaded_model"]] or [e["ended"] - e["at"] for e in executions]
    return {
        "seconds": end - released,
        "batches": len(batch_ids),
        "loads": len(loads),
        "load_seconds": statistics.mean(e["load_seconds"] for e in loads) if loads else 0.0,
        "batch_seconds": statistics.median(per_batch),
        "per_worker": {w.hostname(): sum(1 for e in executions if e["worker"] == w.hostname()) for w in workers},
    }


def _failover(box: CeleryBox, victim, survivor, skus: int) -> dict:
    batch_id = box.mint(skus)
    box.pause(QUEUE, survivor)
    proc = box.launch(batch_id)
    state_db = box.state_db()
    _wait(lambda: len(state_db.receipts(batch_id, latest_only=False)) >= 3, 600, "batch never started")
    box.resume(QUEUE, survivor)
    done_before = len(state_db.receipts(batch_id, latest_only=False))
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.time()
    result = box.finish(proc, timeout=1200)
    executions = step_executions(box.instance(), result["run_id"])
    taken_over = executions[-1]
    items = len(state_db.batch_items(batch_id))
    return {
        "to_restart": taken_over["at"] - killed,
        "to_finish": taken_over["ended"] - killed,
        "left": items - done_before,
        "items": items,
        "worker": taken_over["worker"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--skus", type=int, default=2, help="SKUs per batch (sample Men/Tops SKUs have 4 views each)")
    parser.add_argument("--kills", type=int, default=3, help="failover trials")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="zimage-bench-workers-"))
    models = Path(os.environ.get("ZIMAGE_MODELS_DIR") or Path(tempfile.gettempdir()) / "zimage-models")
    broker = PrivateRabbitMQ()
    box = CeleryBox(broker, root, models)
    try:
        box.cli("ingest")
        cpu = box.start_worker("--cpu", "--concurrency", "2", name="cpu")
        one = box.start_worker("--gpu", "0", name="gpu0")
        box.wait_ready(cpu, one)
        batch_ids = [box.mint(args.skus) for _ in range(args.batches)]
        items = sum(len(box.state_db().batch_items(b)) for b in batch_ids)
        print(f"{args.batches} batches, {items} images in all; tiny Z-Image on CPU, one core per worker\n")

        single = _gpu_stage(box, [one], batch_ids, force=True)
        one.stop()
        pair = [box.start_worker("--gpu", str(i), name=f"gpu{i}b") for i in (0, 1)]
        box.wait_ready(*pair)
        double = _gpu_stage(box, pair, batch_ids, force=True)

        for label, figures in (("1 GPU worker ", single), ("2 GPU workers", double)):
            rate = figures["batches"] / figures["seconds"] * 60
            print(
                f"{label}: {figures['seconds']:6.1f} s for {figures['batches']} batches = {rate:5.1f} batches/min; "
                f"model loads {figures['loads']} (per batch it would be {figures['batches']}); batches per worker {sorted(figures['per_worker'].values())}"
            )
        print(f"throughput two/one: {single['seconds'] / double['seconds']:.2f}x")

        from zimage_assets.domain.placement import batches_per_run

        load, batch = single["load_seconds"], single["batch_seconds"]
        print(
            f"model load {load:.2f} s, a batch's GPU step {batch:.1f} s (median): a pod per step would need "
            f"{batches_per_run(load, batch)} batch(es) per run to keep the load under 5 %"
        )

        print(f"\nfailover ({args.kills} kills, {args.skus * 2} SKUs per batch):")
        victim, survivor = pair
        trials = []
        for _ in range(args.kills):
            trial = _failover(box, victim, survivor, args.skus * 2)
            trials.append(trial)
            print(
                f"  killed with {trial['left']} of {trial['items']} images left: the other worker started the batch "
                f"{trial['to_restart']:.2f} s after the kill and finished it {trial['to_finish']:.1f} s after"
            )
            fresh = box.restart_worker(victim)
            victim, survivor = survivor, fresh
        print(
            f"  median: taken over after {statistics.median(t['to_restart'] for t in trials):.2f} s, "
            f"finished after {statistics.median(t['to_finish'] for t in trials):.1f} s"
        )
    finally:
        box.close()
        broker.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
