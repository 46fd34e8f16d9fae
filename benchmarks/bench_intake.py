"""The RabbitMQ intake draining a backlog: messages per second, none lost, none doubled.

    .venv/bin/python benchmarks/bench_intake.py [--messages 10000] [--duplicates 0.02] [--batch-size 200]
                                                [--backends sqlite,postgresql] [--postgres URL]

On a vhost of its own on the local RabbitMQ (127.0.0.1:5672, guest; made with rabbitmqctl and
deleted afterwards) it publishes --messages requests, spread over zimage.gen.high / normal / low,
plus a share --duplicates of them a second time (redeliveries of a task_id already sent), then
runs `zimage intake --drain` (the real command, in its own process) against a fresh project home
(SQLite) or a fresh database on PostgreSQL. It prints the intake's own rate (first message to
last acknowledgement), the wall time of the command, and the tasks recorded, which must equal
the distinct task_ids, with nothing left in the queues. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--duplicates", type=float, default=0.02, help="share of messages published twice")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("ZIMAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    from api_harness import Vhost

    vhost = Vhost(prefix="zimage-bench")
    try:
        print(f"{args.messages} messages (+{args.duplicates:.0%} redelivered task_ids), batches of {args.batch_size}, vhost {vhost.name}")
        print(f"{'backend':<11} {'published':>9} {'msg/s':>7} {'wall s':>7} {'received':>8} {'tasks':>6} {'distinct':>8} {'left':>5}")
        for n, backend in enumerate(args.backends.split(",")):
            row = run(backend.strip(), args, vhost, prefix=f"b{n}.zimage.gen")
            print(
                f"{backend:<11} {row['published']:>9} {row['rate']:>7.0f} {row['wall']:>7.1f} {row['received']:>8} {row['tasks']:>6} "
                f"{row['distinct']:>8} {row['left']:>5}" + ("" if row["tasks"] == row["distinct"] and not row["left"] else "   <- lost or doubled!")
            )
    finally:
        vhost.delete()
    return 0


def run(backend: str, args, vhost, prefix: str) -> dict:
    from api_harness import api_environment
    from resources.request_queue import RequestQueue
    from resources.state_db import StateDB, dispose_engines
    from servers import create_database, drop_database

    home = Path(tempfile.mkdtemp(prefix=f"zimage-bench-intake-{backend}-")) / "home"
    extra = {"ZIMAGE_AMQP_URL": vhost.url, "ZIMAGE_INTAKE_QUEUE_PREFIX": prefix, "ZIMAGE_METRICS_FILE": ""}
    database = None
    if backend == "postgresql":
        database = create_database(args.postgres, prefix="zimage_bench_intake")
        extra["ZIMAGE_DB_URL"] = database
    env = api_environment(home, Path(tempfile.gettempdir()) / "zimage-models", **extra)
    db_url = database or f"sqlite:///{home / 'zimage.sqlite'}"
    queue = RequestQueue(vhost.url, prefix)
    try:
        now = datetime.now(timezone.utc).isoformat()
        messages = {p: [] for p in ("high", "normal", "low")}
        for n in range(args.messages):
            priority = ("high", "normal", "normal", "low")[n % 4]
            body = {"prompt": f"a linen shirt, studio photo, variant {n}", "num_images": 1 + n % 3, "width": 512, "height": 512}
            messages[priority].append({"task_id": f"bench-{n:06d}", "priority": priority, "created_at": now, "payload": body})
        every = max(1, round(1 / args.duplicates)) if args.duplicates > 0 else 0
        duplicates = [m for p in messages for m in messages[p][::every]] if every else []
        published = 0
        connection = queue.connect()
        channel = connection.channel()
        queue.declare(channel)
        channel.confirm_delivery()
        for priority, batch in messages.items():
            published += queue.publish(batch, priority, channel=channel)
        for message in duplicates:
            published += queue.publish([message], message["priority"], channel=channel)
        connection.close()

        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "zimage_assets.cli", "intake", "--drain", "--batch-size", str(args.batch_size)],
            env=env, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"zimage intake failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        summary = done.stdout.strip().splitlines()[-1]
        rate = float(re.search(r"([\d.]+) messages/s", summary).group(1))
        received = int(re.search(r"(\d+) message\(s\) received", summary).group(1))
        state = StateDB(url=db_url)
        depths = queue.depths()
        return {
            "published": published, "rate": rate, "wall": wall, "received": received, "tasks": state.table_counts()["request_tasks"],
            "distinct": args.messages, "left": sum(depths.values()),
        }  # fmt: skip
    finally:
        dispose_engines()
        if database:
            drop_database(args.postgres, database)


if __name__ == "__main__":
    sys.exit(main())
