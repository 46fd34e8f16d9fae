"""The generations API as a real server for the tests: `zimage api` (uvicorn) on a free loopback
port in its own process, talked to with real HTTP (`requests`); and a private RabbitMQ vhost.

`api_environment(home, models_dir, **extra)` is the environment a test project runs with;
`ApiServer(env)` starts the command with it and waits for /healthz; `Vhost()` creates a vhost on
the shared RabbitMQ (127.0.0.1:5672, or ZIMAGE_TEST_AMQP_HOST) with `rabbitmqctl`, for guest,
and deletes it again, so tests never touch another engineer's queues.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import SAMPLE_CATALOG, SMALL_TEMPLATES
from servers import _die_with_parent, _stop, free_port, wait_until

SECRET = "test-webhook-secret"
AMQP_HOST = os.environ.get("ZIMAGE_TEST_AMQP_HOST", "127.0.0.1:5672")


def api_environment(home: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env.update(
        ZIMAGE_HOME=str(home),
        ZIMAGE_MODELS_DIR=str(models_dir),
        ZIMAGE_TEMPLATES=str(SMALL_TEMPLATES),
        ZIMAGE_CATALOG_SOURCE=str(SAMPLE_CATALOG),
        ZIMAGE_MODEL="tiny",
        ZIMAGE_WEBHOOK_SECRET=SECRET,
        ZIMAGE_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        ZIMAGE_WEBHOOK_ALLOW_LOOPBACK="true",
        # As in conftest: catalog SKUs regenerated here have no photo in the small templates' views,
        # so they are text-to-image (illustrative); publish them, to follow a request to its images.
        ZIMAGE_ILLUSTRATIVE_REVIEW="false",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


class ApiServer:
    def __init__(self, env: dict[str, str], workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["ZIMAGE_HOME"]).parent / f"api-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "zimage_assets.cli", "api", "--port", str(self.port), "--workers", str(workers)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            wait_until(self._healthy, 90, "zimage api", self.log)
        except RuntimeError:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"zimage api exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def post(self, path: str, body=None, key: str | None = None, headers: dict | None = None, timeout: float = 120, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, headers=_headers(key, headers), timeout=timeout, **kwargs)

    def get(self, path: str, key: str | None = None, headers: dict | None = None, timeout: float = 30) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=_headers(key, headers), timeout=timeout)

    def stop(self) -> None:
        _stop(self.proc)


def _headers(key: str | None, headers: dict | None) -> dict:
    out = dict(headers or {})
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


def new_key(db_url: str, *, name: str = "test", scopes=("generate", "read"), requests_per_minute: int = 1000, images_per_day: int = 100000) -> str:
    """A key made the way `zimage api-key create` makes it (the CLI itself is tested once)."""
    from resources.state_db import StateDB
    from zimage_assets.api.keys import create_key

    return create_key(StateDB(url=db_url), name=name, scopes=tuple(scopes), requests_per_minute=requests_per_minute, images_per_day=images_per_day)[1]


# ---- RabbitMQ ----


def rabbitmqctl() -> str:
    path = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if not os.access(path, os.X_OK):
        pytest.fail("rabbitmqctl is not installed: run scripts/services (RabbitMQ on 127.0.0.1:5672)", pytrace=False)
    return path


class Vhost:
    """A vhost of its own on the shared RabbitMQ, for guest; deleted by `delete()`."""

    def __init__(self, prefix: str = "zimage-test"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@{AMQP_HOST}/{self.name}"

    def _ctl(self, *args: str) -> str:
        done = subprocess.run([rabbitmqctl(), "-q", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            pytest.fail(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[:500]}; is RabbitMQ running? (scripts/services)", pytrace=False)
        return done.stdout

    def unacknowledged(self, queue: str) -> int:
        for line in self._ctl("list_queues", "-p", self.name, "name", "messages_unacknowledged").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return 0

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
