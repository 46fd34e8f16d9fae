"""The RabbitMQ intake against the local broker, on a vhost of its own (created and deleted with
rabbitmqctl): messages become tasks with their priority, malformed ones are dead-lettered with
the reason, and a consumer killed before (or after) its commit loses nothing and doubles
nothing. `zimage intake` runs as a real process."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pika
import pytest
from api_harness import Vhost, api_environment, new_key, wait_for
from conftest import REPO, Project
from daemon_harness import evaluate_sensor
from servers import _die_with_parent

SMALL = {"width": 64, "height": 64}


@pytest.fixture(scope="module")
def vhost():
    host = Vhost()
    yield host
    host.delete()


@pytest.fixture
def make_intake(vhost, tmp_path, models_dir, monkeypatch):
    """A project whose intake reads this vhost, under the given queue prefix (default: one of its own)."""
    from resources import build_resources, request_queue_from_settings
    from zimage_assets.settings import Settings

    def make(prefix: str = "") -> Intake:
        prefix = prefix or f"t{uuid.uuid4().hex[:8]}.zimage.gen"
        env = api_environment(tmp_path / "home", models_dir, ZIMAGE_AMQP_URL=vhost.url, ZIMAGE_INTAKE_QUEUE_PREFIX=prefix)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings.from_env()
        resources = build_resources(settings)
        resources["state_db"].engine  # noqa: B018 - the tables exist before any consumer starts
        return Intake(env, request_queue_from_settings(settings), resources)

    return make


class Intake:
    def __init__(self, env, queue, resources):
        self.env, self.queue, self.resources = env, queue, resources
        self.state_db = resources["state_db"]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zimage_assets.cli", "intake", *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "zimage_assets.cli", "intake", *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def tasks(self) -> list[dict]:
        from resources.state_db import request_tables as rt

        with self.state_db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(rt.request_tasks.select().order_by(rt.request_tasks.c.task_id))]


def message(task_id: str, priority: str | None = None, **payload) -> dict:
    out = {"task_id": task_id, "created_at": datetime.now(timezone.utc).isoformat(), "payload": {"prompt": f"a mug for {task_id}", **SMALL, **payload}}
    if priority:
        out["priority"] = priority
    return out


def test_messages_become_tasks_with_their_priority(make_intake, instance):
    intake = make_intake("zimage.gen")
    queue = intake.queue
    assert queue.queue("high") == "zimage.gen.high"  # the contract's names, in this test's own vhost
    owner = new_key(intake.state_db.url)
    intake.env["ZIMAGE_INTAKE_KEY_ID"] = owner.split("_")[1]
    queue.publish([message("low-1"), message("low-2")], "low")
    queue.publish([message("normal-1"), message("urgent-1", priority="high")], "normal")  # the message's priority wins
    queue.publish([message("high-1", num_images=2)], "high")
    from prometheus_client import generate_latest

    from resources.metrics import build_registry

    registry, _ = build_registry(intake.state_db, instance, min_interval_seconds=0, broker_depths=queue.depths)
    text = generate_latest(registry).decode()  # messages still in the broker count as waiting
    assert 'zimage_intake_messages{priority="low"} 2.0' in text and 'zimage_queue_length{priority="normal"} 2.0' in text
    assert 'zimage_metrics_source_up{source="broker"} 1.0' in text
    done = intake.run("--drain")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 message(s) received, 5 recorded" in done.stdout
    tasks = {t["task_id"]: t for t in intake.tasks()}
    assert {k: t["priority"] for k, t in tasks.items()} == {"low-1": "low", "low-2": "low", "normal-1": "normal", "urgent-1": "high", "high-1": "high"}
    assert {t["source"] for t in tasks.values()} == {"amqp"} and {t["key_id"] for t in tasks.values()} == {owner.split("_")[1]}
    assert json.loads(tasks["high-1"]["request"])["num_images"] == 2 and tasks["high-1"]["status"] == "queued"
    assert queue.depths() == {"high": 0, "normal": 0, "low": 0, "dead": 0}

    # Declared durable with x-max-priority: a producer declaring them otherwise is refused.
    connection = pika.BlockingConnection(pika.URLParameters(queue.url))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-max-priority"):
        dead_lettering = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "zimage.gen.dead"}
        connection.channel().queue_declare("zimage.gen.high", durable=True, arguments=dead_lettering)
    connection.close()

    # The request sensor mints them most urgent first, and their runs carry the priority.
    from sensors.requests import request_batches_sensor

    result = evaluate_sensor(request_batches_sensor, Project(intake.resources, instance))
    assert [r.tags["zimage/priority"] for r in result.run_requests] == ["high", "normal", "low"]
    assert [r.tags["dagster/priority"] for r in result.run_requests] == ["10", "0", "-10"]

    # A redelivered task_id is not recorded twice; the same task_id with another payload is dead-lettered.
    queue.publish([message("low-1")], "low")
    queue.publish([message("normal-1", prompt="something else")], "normal")
    again = intake.run("--drain")
    assert "2 message(s) received, 1 recorded (or already recorded), 1 dead-lettered" in again.stdout, again.stdout
    assert len(intake.tasks()) == 5
    ((_, headers),) = queue.dead_letters()
    assert "task_id_reused" in headers["x-zimage-reason"] and headers["x-zimage-queue"] == "zimage.gen.normal"


def test_malformed_messages_are_dead_lettered_with_the_reason(make_intake):
    intake = make_intake()
    queue = intake.queue
    bad = {
        b"this is not json": "invalid_json",
        json.dumps({"created_at": "2026-01-01T00:00:00Z", "payload": {}}).encode(): "task_id: missing",
        json.dumps(message("has space")).replace('"has space"', '"has space!"').encode(): "invalid_task_id",
        json.dumps(message("w-1", width=1000)).encode(): "width: not_multiple_of_16",
        json.dumps(message("m-1", model="z-image-omni")).encode(): "model: model_not_served",
        json.dumps({**message("c-1"), "created_at": "yesterday"}).encode(): "created_at: invalid_timestamp",
        json.dumps({**message("x-1"), "reply_to": "me"}).encode(): "reply_to: unknown_field",
        json.dumps(message("cb-1", callback_url="https://evil.example.com/x")).encode(): "callback_url: callback_not_allowed",
    }
    queue.publish(list(bad), "normal")
    queue.publish([message("ok-1"), message("blocked-1", prompt="a naked woman in lingerie")], "normal")
    twins = [json.dumps(message("dup-1")).encode(), json.dumps(message("dup-1", prompt="not the same")).encode()]
    queue.publish(twins, "normal")  # one task_id, two payloads, in one batch: the second is refused
    bad[twins[1]] = "task_id: task_id_reused"
    done = intake.run("--drain")
    assert done.returncode == 0 and f"{len(bad) + 3} message(s) received, 3 recorded" in done.stdout, done.stdout
    letters = queue.dead_letters()
    assert len(letters) == len(bad)
    for (body, headers), (sent, reason) in zip(sorted(letters), sorted(bad.items())):
        assert body == sent  # the message as it came, byte for byte
        assert reason in headers["x-zimage-reason"], (sent, headers)
    tasks = {t["task_id"]: t for t in intake.tasks()}
    assert set(tasks) == {"ok-1", "blocked-1", "dup-1"}
    assert tasks["blocked-1"]["status"] == "blocked" and "unsafe_sexual" in json.loads(tasks["blocked-1"]["reason"])  # recorded, never generated


def test_a_consumer_killed_before_its_commit_loses_nothing_and_doubles_nothing(make_intake, vhost):
    intake = make_intake()
    queue = intake.queue
    sent = [f"kill-{n:03d}" for n in range(40)]
    queue.publish([message(task_id) for task_id in sent], "normal")
    database = intake.state_db.url[len("sqlite:///") :]
    lock = sqlite3.connect(database, timeout=1, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the consumer's commit waits behind this
    consumer = intake.start()
    try:
        wait_for(lambda: vhost.unacknowledged(queue.queue("normal")) == 40, 90, "the consumer to hold every message, unacknowledged")
        consumer.send_signal(signal.SIGKILL)  # killed between receive and commit
        consumer.wait(30)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: queue.depths()["normal"] == 40, 60, "the broker to put the messages back")
    assert intake.tasks() == []
    done = intake.run("--drain")
    assert "40 message(s) received, 40 recorded" in done.stdout, done.stdout
    assert [t["task_id"] for t in intake.tasks()] == sent

    # Killed after its commit, before its acknowledgement: the redelivered messages are recognised.
    later = [f"late-{n:03d}" for n in range(30)]
    queue.publish([message(task_id) for task_id in later], "normal")
    crash = (
        "import os\n"
        "from resources import build_resources, request_queue_from_settings\n"
        "from resources.state_db import utcnow\n"
        "from zimage_assets.requests import Intake\n"
        "from zimage_assets.settings import Settings\n"
        "s = Settings.from_env(); r = build_resources(s)\n"
        "intake = Intake(r['state_db'], r['quality_gates'], r['webhooks'], r['request_policy'])\n"
        "def handle(batch):\n"
        "    intake.record_messages([(d.body, d.queue_priority) for d in batch], owner_key_id='', now=utcnow())\n"
        "    os._exit(9)  # after the commit, before the acknowledgement\n"
        "request_queue_from_settings(s).consume(handle, batch_size=100)\n"
    )
    died = subprocess.run([sys.executable, "-c", crash], env=intake.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    recorded = {t["task_id"] for t in intake.tasks()} & set(later)
    assert recorded  # committed ...
    wait_for(lambda: queue.depths()["normal"] == 30, 60, "the broker to redeliver the unacknowledged batch")  # ... yet all come back
    done = intake.run("--drain")
    assert "30 message(s) received, 30 recorded (or already recorded)" in done.stdout, done.stdout
    tasks = intake.tasks()
    assert [t["task_id"] for t in tasks] == sorted(sent + later) and len(tasks) == 70
    assert queue.depths() == {"high": 0, "normal": 0, "low": 0, "dead": 0}


def test_the_intake_needs_a_broker_url(make_intake):
    intake = make_intake()
    intake.env["ZIMAGE_AMQP_URL"] = ""
    done = intake.run()
    assert done.returncode == 1 and "set ZIMAGE_AMQP_URL" in done.stderr
    intake.env["ZIMAGE_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:1/nowhere"
    done = intake.run()
    assert done.returncode == 1 and "RabbitMQ at" in done.stderr
