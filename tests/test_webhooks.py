"""Webhooks against a real local HTTP server: signatures, retries with backoff, host rules,
and the alert / callback sensors on real runs."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daemon_harness import evaluate_sensor

from zimage_assets.domain.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, target_error, verify_signature

SECRET = "test-webhook-secret"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers from a script."""

    def __init__(self, statuses=(200,), redirect_to: str = ""):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body, "at": time.monotonic()})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    servers = []

    def start(*args, **kwargs) -> Receiver:
        servers.append(Receiver(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(**fields):
    from resources.webhooks import WebhookClient

    defaults = {"secret": SECRET, "allowed_hosts": ["127.0.0.1"], "allow_loopback": True, "backoff_base_seconds": 0.05, "max_attempts": 4}
    return WebhookClient(**{**defaults, **fields})


def enqueue(state_db, hooks, urls, event_id="run_failure:r1", data=None):
    from resources.state_db import utcnow

    return hooks.enqueue(state_db, event="run_failure", event_id=event_id, data=data or {"run_id": "r1"}, urls=urls, now=utcnow())


# ---- rules (no network) ----


def test_only_allowed_https_hosts_are_reachable():
    allowed = ["hooks.example.com", ".partner.example"]
    assert target_error("https://hooks.example.com/x", allowed) is None
    assert target_error("https://a.partner.example/x", allowed) is None
    assert "not in ZIMAGE_WEBHOOK_ALLOWED_HOSTS" in target_error("https://evil.example.net/x", allowed)
    assert "not in ZIMAGE_WEBHOOK_ALLOWED_HOSTS" in target_error("https://hooks.example.com.evil.net/x", allowed)
    assert "not https" in target_error("http://hooks.example.com/x", allowed)
    assert "points at this machine" in target_error("https://127.0.0.1/x", ["127.0.0.1"])
    assert "points at this machine" in target_error("http://localhost:8080/x", ["localhost"])
    assert target_error("http://127.0.0.1:9/x", ["127.0.0.1"], allow_loopback=True) is None
    assert "link-local" in target_error("https://169.254.169.254/latest/meta-data", ["169.254.169.254"])
    assert "not an http(s) URL" in target_error("file:///etc/passwd", allowed)
    assert "not a valid URL" in target_error("https://hooks.example.com:99999/", allowed)


def test_settings_refuse_unsigned_or_unsafe_webhooks():
    from zimage_assets.settings import Settings

    base = {"ZIMAGE_HOME": "/tmp/zimage-settings-test"}
    with pytest.raises(ValueError, match="ZIMAGE_WEBHOOK_SECRET is required"):
        Settings.from_env({**base, "ZIMAGE_ALERT_WEBHOOK_URLS": "https://hooks.example.com/a"})
    with pytest.raises(ValueError, match="ZIMAGE_CALLBACK_URLS: .*not https"):
        Settings.from_env({**base, "ZIMAGE_CALLBACK_URLS": "http://hooks.example.com/a", "ZIMAGE_WEBHOOK_SECRET": "s"})
    with pytest.raises(ValueError, match="points at this machine"):
        Settings.from_env({**base, "ZIMAGE_CALLBACK_URLS": "http://127.0.0.1:9/a", "ZIMAGE_WEBHOOK_SECRET": "s"})
    settings = Settings.from_env(
        {**base, "ZIMAGE_ALERT_WEBHOOK_URLS": "https://hooks.example.com/a, https://ops.example.org/b", "ZIMAGE_WEBHOOK_SECRET": "s"}
    )
    assert settings.webhook_allowed_hosts == ("hooks.example.com", "ops.example.org")  # default: the configured hosts
    assert settings.describe()["webhook_secret"] == "***"


# ---- a real server ----


def test_bodies_are_signed_and_delivered_once(project, receiver):
    from resources.state_db import utcnow

    server = receiver()
    hooks = client()
    assert enqueue(project.state_db, hooks, [f"{server.url}/alerts"], data={"run_id": "r1", "note": "ünïcode"}) == 1
    assert enqueue(project.state_db, hooks, [f"{server.url}/alerts"]) == 0  # the same event is queued once
    counts = hooks.deliver_due(project.state_db, now=utcnow)
    assert counts == {"delivered": 1, "failed": 0, "retry_later": 0, "attempts": 1}
    (request,) = server.requests
    assert verify_signature(request["body"], SECRET, request["headers"][SIGNATURE_HEADER])
    assert not verify_signature(request["body"], "another-secret", request["headers"][SIGNATURE_HEADER])
    assert not verify_signature(request["body"] + b" ", SECRET, request["headers"][SIGNATURE_HEADER])
    body = json.loads(request["body"])
    assert (body["event"], body["id"], body["data"]["note"]) == ("run_failure", "run_failure:r1", "ünïcode")
    assert request["headers"][EVENT_HEADER] == "run_failure" and request["headers"]["Content-Type"] == "application/json"
    (delivery,) = project.state_db.webhook_deliveries()
    assert request["headers"][DELIVERY_HEADER] == delivery["delivery_id"] and delivery["status"] == "delivered"
    assert hooks.deliver_due(project.state_db, now=utcnow)["attempts"] == 0  # nothing is sent twice


def test_failures_are_retried_with_backoff_and_every_attempt_is_logged(project, receiver):
    from resources.state_db import utcnow

    server = receiver(statuses=[503, 500, 200])
    hooks = client(backoff_base_seconds=0.1)
    enqueue(project.state_db, hooks, [f"{server.url}/alerts"])
    counts = hooks.deliver_due(project.state_db, now=utcnow)
    assert counts == {"delivered": 1, "failed": 0, "retry_later": 0, "attempts": 3}
    gaps = [b["at"] - a["at"] for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # exponential backoff
    assert len({r["body"] for r in server.requests}) == 1  # the same signed bytes every time
    (delivery,) = project.state_db.webhook_deliveries()
    attempts = project.state_db.webhook_attempts(delivery["delivery_id"])
    assert [(a["attempt"], a["http_status"], a["error"]) for a in attempts] == [(1, 503, "HTTP 503 Service Unavailable"), (2, 500, "HTTP 500 Internal Server Error"), (3, 200, "")]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)


def test_long_backoffs_wait_for_a_later_tick_and_give_up_after_max_attempts(project, receiver):
    from resources.state_db import utcnow

    server = receiver(statuses=[502])
    hooks = client(backoff_base_seconds=60, max_attempts=2)
    enqueue(project.state_db, hooks, [f"{server.url}/alerts"])
    assert hooks.deliver_due(project.state_db, now=utcnow)["retry_later"] == 1
    (delivery,) = project.state_db.webhook_deliveries()
    assert delivery["status"] == "pending" and delivery["next_attempt_at"] > utcnow() + timedelta(seconds=50)
    assert hooks.deliver_due(project.state_db, now=utcnow)["attempts"] == 0  # not due yet
    later = lambda: utcnow() + timedelta(seconds=61)  # noqa: E731 (a clock one minute ahead)
    assert hooks.deliver_due(project.state_db, now=later) == {"delivered": 0, "failed": 1, "retry_later": 0, "attempts": 1}
    assert len(server.requests) == 2
    assert project.state_db.webhook_deliveries()[0]["status"] == "failed"


def test_client_errors_are_final_and_unreachable_receivers_are_retried(project, receiver):
    import socket

    from resources.state_db import utcnow

    rejecting = receiver(statuses=[400])
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/alerts"
    hooks = client(max_attempts=3)
    enqueue(project.state_db, hooks, [f"{rejecting.url}/alerts", closed])
    counts = hooks.deliver_due(project.state_db, now=utcnow)
    assert counts == {"delivered": 0, "failed": 2, "retry_later": 0, "attempts": 4}
    by_url = {d["url"]: d for d in project.state_db.webhook_deliveries()}
    assert (by_url[f"{rejecting.url}/alerts"]["attempts"], by_url[f"{rejecting.url}/alerts"]["last_status"]) == (1, 400)
    assert by_url[closed]["attempts"] == 3 and "ConnectionRefusedError" in by_url[closed]["last_error"]


def test_refused_targets_and_redirects_are_never_followed(project, receiver):
    from resources.state_db import utcnow

    elsewhere = receiver()
    bouncer = receiver(statuses=[302], redirect_to=f"{elsewhere.url}/stolen")
    hooks = client(allowed_hosts=["127.0.0.1"])
    enqueue(project.state_db, hooks, [f"{bouncer.url}/alerts", "https://evil.example.net/collect", "http://localhost:1/x"])
    by_url = {d["url"]: d for d in project.state_db.webhook_deliveries()}
    assert by_url["https://evil.example.net/collect"]["status"] == "refused"
    assert "not in ZIMAGE_WEBHOOK_ALLOWED_HOSTS" in by_url["https://evil.example.net/collect"]["last_error"]
    assert by_url["http://localhost:1/x"]["status"] == "refused"  # allowed loopback, but not that host name
    counts = hooks.deliver_due(project.state_db, now=utcnow)
    assert counts["failed"] == 1 and counts["attempts"] == 1  # a 302 is an answer, not a retry
    assert len(bouncer.requests) == 1 and not elsewhere.requests
    bounced = {d["url"]: d for d in project.state_db.webhook_deliveries()}[f"{bouncer.url}/alerts"]
    assert (bounced["status"], bounced["last_status"]) == ("failed", 302) and "redirect" in bounced["last_error"]


# ---- the sensors, on real runs ----


@pytest.fixture
def alerting(project_env, monkeypatch, instance, receiver):
    """A project whose alerts and callbacks go to a local receiver."""
    from conftest import Project
    from resources import build_resources
    from zimage_assets.settings import Settings

    server = receiver()
    monkeypatch.setenv("ZIMAGE_ALERT_WEBHOOK_URLS", f"{server.url}/alerts")
    monkeypatch.setenv("ZIMAGE_CALLBACK_URLS", f"{server.url}/callbacks")
    monkeypatch.setenv("ZIMAGE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("ZIMAGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    return Project(build_resources(Settings.from_env()), instance), server


def tick(sensor, project, cursor=None):
    return evaluate_sensor(sensor, project, cursor)


def test_a_failed_batch_run_alerts_and_marks_the_batch_failed(alerting, tmp_path):
    from resources.prompt_templates import PromptTemplates
    from sensors.alerts import run_failure_alert_sensor, webhook_delivery_sensor

    project, server = alerting
    project.ingest()
    (batch_id,) = project.mint(skus=["MH01-XS-Black"])
    started = tick(run_failure_alert_sensor, project)  # the first tick starts watching from now

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed")
    project.resources = {**project.resources, "prompt_templates": PromptTemplates(path=str(broken))}
    failed = project.generate(batch_id, raise_on_error=False)
    assert not failed.success

    watched = tick(run_failure_alert_sensor, project, started.cursor)
    assert project.state_db.batch(batch_id)["status"] == "failed"
    assert tick(webhook_delivery_sensor, project).skip_message.startswith("1 attempt(s): 1 delivered")
    (alert,) = server.requests
    assert alert["path"] == "/alerts" and verify_signature(alert["body"], SECRET, alert["headers"][SIGNATURE_HEADER])
    body = json.loads(alert["body"])
    assert body["event"] == "run_failure" and body["id"] == f"run_failure:{failed.run_id}"
    assert (body["data"]["run_id"], body["data"]["batch_id"], body["data"]["batch_kind"]) == (failed.run_id, batch_id, "manual")
    assert "is not valid YAML" in body["data"]["errors"][0]

    # Ticks that see no new failure alert nothing again.
    tick(run_failure_alert_sensor, project, watched.cursor)
    assert tick(webhook_delivery_sensor, project).skip_message == "no webhook due"
    assert len(server.requests) == 1


def test_a_published_batch_calls_back_with_its_manifest_and_sla(alerting):
    from resources.state_db import utcnow
    from sensors.alerts import batch_completion_sensor, webhook_delivery_sensor
    from zimage_assets.minting import mint_batches

    project, server = alerting
    project.ingest()
    templates = project.resources["prompt_templates"].load()
    (batch_id,) = mint_batches(
        project.state_db, templates, [("MH01-XS-Black", "Men/Tops")], kind="new", max_items=10,
        selection={"callback_url": "https://evil.example.net/steal"}, deadline=project.state_db.products(["MH01-XS-Black"])["MH01-XS-Black"]["first_seen"] + timedelta(hours=2),
    )  # fmt: skip
    started = tick(batch_completion_sensor, project)
    done = project.generate(batch_id)

    tick(batch_completion_sensor, project, started.cursor)
    deliveries = {d["url"]: d for d in project.state_db.webhook_deliveries()}
    assert deliveries["https://evil.example.net/steal"]["status"] == "refused"  # data cannot pick the target
    tick(webhook_delivery_sensor, project)
    (callback,) = server.requests
    assert callback["path"] == "/callbacks" and verify_signature(callback["body"], SECRET, callback["headers"][SIGNATURE_HEADER])
    data = json.loads(callback["body"])["data"]
    assert (data["batch_id"], data["run_id"], data["status"], data["skus"], data["images"]) == (batch_id, done.run_id, "published", 1, 4)
    assert data["sla_met"] is True and data["manifest_json"].endswith(f"manifests/{batch_id}/manifest.json")
    (history,) = project.state_db.batches_with_deadlines(utcnow() - timedelta(days=1))  # the SLA report's source
    record = project.instance.get_run_record_by_id(done.run_id)
    assert history["published_at"] == datetime.fromtimestamp(record.end_time, timezone.utc).replace(tzinfo=None)
    assert data["published_at"] == history["published_at"].isoformat(timespec="seconds") + "Z"
