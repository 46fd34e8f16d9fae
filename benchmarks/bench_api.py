"""The generations API under load: POSTs from concurrent clients, with SQLite and with PostgreSQL.

    .venv/bin/python benchmarks/bench_api.py [--requests 1000] [--clients 50] [--retries 0.2] [--workers 1]
                                             [--backends sqlite,postgresql] [--postgres URL]

For each backend it starts `zimage api` (uvicorn, in its own process, on 127.0.0.1) on a fresh
project home (SQLite file) or a fresh database on the PostgreSQL server (default
postgresql://postgres@127.0.0.1:5432/postgres; the database is dropped afterwards), makes 10 API
keys, and sends --requests POSTs to /v1/images/generations from --clients threads, each with
its own keep-alive `requests.Session`. A share --retries of them repeat an earlier request
(same key, same body, and the same Idempotency-Key where the original had one), as clients
retrying after a lost answer do. Every POST asks `Prefer: respond-async` (the API records and
answers; nothing is generated here). It prints latency percentiles, requests/s, errors, the
answers that were replays, and the tasks recorded, which must equal the distinct requests.
It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--retries", type=float, default=0.2, help="share of the POSTs that repeat an earlier one")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("ZIMAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    print(f"{args.requests} POSTs from {args.clients} clients ({args.retries:.0%} retries), uvicorn workers: {args.workers}")
    print(f"{'backend':<11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>7} {'errors':>6} {'replays':>7} {'distinct':>8} {'tasks':>6}")
    for backend in args.backends.split(","):
        row = run(backend.strip(), args)
        print(
            f"{backend:<11} {row['p50']:>8.1f} {row['p95']:>8.1f} {row['p99']:>8.1f} {row['max']:>8.1f} {row['rate']:>7.0f} "
            f"{row['errors']:>6} {row['replays']:>7} {row['distinct']:>8} {row['tasks']:>6}"
            + ("" if row["tasks"] == row["distinct"] else "   <- tasks != distinct requests!")
        )
        for error in row["error_samples"]:
            print(f"    error: {error}")
    return 0


def run(backend: str, args) -> dict:
    import requests

    from api_harness import ApiServer, api_environment, new_key
    from resources.state_db import StateDB, dispose_engines
    from servers import create_database, drop_database

    home = Path(tempfile.mkdtemp(prefix=f"zimage-bench-api-{backend}-")) / "home"
    models = Path(tempfile.gettempdir()) / "zimage-models"
    extra = {"ZIMAGE_METRICS_FILE": ""}
    database = None
    if backend == "postgresql":
        database = create_database(args.postgres, prefix="zimage_bench_api")
        extra["ZIMAGE_DB_URL"] = database
    env = api_environment(home, models, **extra)
    db_url = database or f"sqlite:///{home / 'zimage.sqlite'}"
    StateDB(url=db_url).engine  # noqa: B018 - the tables, before the server starts
    keys = [new_key(db_url, name=f"bench-{n}", requests_per_minute=10**6, images_per_day=10**9) for n in range(10)]
    server = ApiServer(env, workers=args.workers)
    try:
        plan = _plan(args.requests, args.retries, keys)
        latencies: list[float] = []
        errors: list[str] = []
        replays = 0
        lock = threading.Lock()
        work = iter(plan)

        def client() -> None:
            nonlocal replays
            session = requests.Session()
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                key, body, idem = item
                headers = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
                if idem:
                    headers["Idempotency-Key"] = idem
                started = time.perf_counter()
                try:
                    response = session.post(f"{server.url}/v1/images/generations", json=body, headers=headers, timeout=120)
                    ok = response.status_code in (200, 202)
                    detail = f"HTTP {response.status_code} {response.text[:200]}"
                except requests.RequestException as exc:
                    ok, detail, response = False, f"{type(exc).__name__}: {exc}", None
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(detail)
                    elif response.headers.get("idempotent-replayed") == "true":
                        replays += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        tasks = StateDB(url=db_url).table_counts()["request_tasks"]
        ordered = sorted(latencies)
        return {
            "p50": _pct(ordered, 50), "p95": _pct(ordered, 95), "p99": _pct(ordered, 99), "max": ordered[-1],
            "mean": statistics.fmean(ordered), "rate": len(ordered) / wall, "errors": len(errors), "error_samples": errors[:3],
            "replays": replays, "distinct": len({(k, str(sorted(b.items())), i) for k, b, i in plan}), "tasks": tasks,
        }  # fmt: skip
    finally:
        server.stop()
        dispose_engines()
        if database:
            drop_database(args.postgres, database)


def _plan(total: int, retry_share: float, keys: list[str]) -> list[tuple[str, dict, str | None]]:
    """Distinct requests (half with an Idempotency-Key), then retries of earlier ones, shuffled."""
    rng = random.Random(42)
    distinct = max(1, round(total * (1 - retry_share)))
    originals = []
    for n in range(distinct):
        body = {"prompt": f"a ceramic mug, studio photo, variant {n}", "num_images": 1 + n % 4, "width": 512, "height": 512}
        originals.append((keys[n % len(keys)], body, f"order-{n}" if n % 2 else None))
    retries = [rng.choice(originals) for _ in range(total - distinct)]
    plan = originals + retries
    rng.shuffle(plan)
    return plan


def _pct(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


if __name__ == "__main__":
    sys.exit(main())
