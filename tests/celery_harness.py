"""Real parts for the Celery executor's tests and benchmark: a private RabbitMQ, `zimage worker`
processes, and runs launched the way a run worker does it.

- `PrivateRabbitMQ`: its own `rabbitmq-server` node (own node name, AMQP and distribution ports,
  data folder and Erlang cookie), booted with the project's deploy/rabbitmq/rabbitmq.conf and
  advanced.config plus a loopback listener, with a `zimage` vhost made by `rabbitmqctl`. It can be
  stopped and started again on the same data (a broker restart) without touching the shared
  RabbitMQ on 5672. Its AMQP heartbeat is short (5 s), so a worker that fails to keep its
  connection during a batch would be caught.
- `CeleryBox`: one project home, one Dagster instance (DAGSTER_HOME with the repository's
  dagster.yaml), ZIMAGE_EXECUTOR=celery, and `zimage worker --gpu N` / `--cpu` processes, the
  project's own command. `launch(batch_id)` starts `python tests/celery_harness.py run BATCH`:
  `execute_job` of the code location's `generate_batch` job (reconstructable, as the code server
  hands it to a run worker), with the batch's run tags; its steps go through Celery.
- Readers of the run's events: which worker ran a step (dagster-celery's "Celery worker"
  metadata) and which steps loaded the model (the generator's "loaded Z-Image" log line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RABBITMQ_BIN = Path(os.environ.get("ZIMAGE_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
VHOST = "zimage"
GPU_STEP = "product_images"
LOAD_MESSAGE = "loaded Z-Image"
HINT = "run scripts/services (it installs rabbitmq-server from Debian's packages)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout: float, what: str, log: Path | None = None, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = f"\n--- {log} ---\n{log.read_text(errors='replace')[-4000:]}" if log and log.exists() else ""
    raise TimeoutError(f"{what} not within {timeout:.0f}s{tail}")


def _die_with_parent() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: nothing outlives a crashed test
    except OSError:
        pass


class PrivateRabbitMQ:
    def __init__(self, heartbeat: int = 5) -> None:
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not os.access(server, os.X_OK):
            raise RuntimeError(f"{server} is not installed: {HINT}")
        self.dir = Path(tempfile.mkdtemp(prefix="zimage-rabbitmq-"))
        self.port, self.dist_port = _free_port(), _free_port()
        self.node = f"zimage-test-{uuid.uuid4().hex[:8]}@localhost"
        deploy = REPO / "deploy" / "rabbitmq"
        config = (deploy / "rabbitmq.conf").read_text()
        config += f"\n# test node\nlisteners.tcp.default = 127.0.0.1:{self.port}\nheartbeat = {heartbeat}\n"
        (self.dir / "rabbitmq.conf").write_text(config)
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(deploy / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
        }
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.start()
        self.ctl("add_vhost", VHOST)
        self.ctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")

    @property
    def url(self) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:{self.port}/{VHOST}"

    def start(self) -> float:
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: {self.log.read_text(errors='replace')[-3000:]}")
            return _port_open(self.port)

        _wait(up, 120, "the private RabbitMQ", self.log)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.ctl("stop", check=False)  # a clean shutdown: durable queues and their messages are kept
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def ctl(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def queue_arguments(self) -> dict[str, str]:
        rows = self.ctl("list_queues", "-p", VHOST, "name", "arguments", "--formatter", "json")
        return {row["name"]: row["arguments"] for row in json.loads(rows)}

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Worker:
    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class CeleryBox:
    """A project on the Celery executor: shared home and Dagster instance, real worker processes."""

    def __init__(self, broker: PrivateRabbitMQ, root: Path, models_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.broker = broker
        self.root = root
        dagster_home = root / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ZIMAGE_", "DAGSTER_", "CUDA_"))},
            "DAGSTER_HOME": str(dagster_home),
            "ZIMAGE_HOME": str(root / "home"),
            "ZIMAGE_MODELS_DIR": str(models_dir),
            "ZIMAGE_TEMPLATES": str(REPO / "tests" / "fixtures" / "templates_small.yaml"),
            "ZIMAGE_CATALOG_SOURCE": str(REPO / "zimage_assets" / "sample_data" / "products.csv"),
            "ZIMAGE_MODEL": "tiny",
            "ZIMAGE_EXECUTOR": "celery",
            "ZIMAGE_CELERY_BROKER_URL": broker.url,
            "ZIMAGE_BATCH_SIZE": "1",  # images are stored one by one: a kill lands mid-batch
            "ZIMAGE_METRICS_FILE": "",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",  # one core per pretend GPU on this CPU box
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.workers: list[Worker] = []
        self.run_ids: list[str] = []
        self.bin = Path(sys.executable).parent

    # ---- workers ----

    def start_worker(self, *args: str, name: str) -> Worker:
        log = self.root / f"worker-{name}-{len(self.workers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(self.bin / "zimage"), "worker", *args, "--name", name],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )  # fmt: skip
        worker = Worker(name, list(args), log, proc)
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker, timeout: float = 180) -> None:
        for worker in workers:
            def ready(w=worker):
                if not w.alive():
                    raise RuntimeError(f"worker {w.name} exited with {w.proc.returncode}: {w.log.read_text(errors='replace')[-3000:]}")
                return " ready." in w.log.read_text(errors="replace")

            _wait(ready, timeout, f"worker {worker.name}", worker.log, interval=0.25)

    def restart_worker(self, worker: Worker) -> Worker:
        worker.stop()
        fresh = self.start_worker(*worker.args, name=worker.name)
        self.wait_ready(fresh)
        return fresh

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()

    def pause(self, queue: str, *workers: Worker) -> None:
        """The workers stop taking tasks from `queue` (Celery's remote control; they stay up)."""
        self._control("cancel_consumer", queue, workers)

    def resume(self, queue: str, *workers: Worker) -> None:
        self._control("add_consumer", queue, workers)

    def ping(self, names: list[str]) -> set[str]:
        """The workers (by hostname) that answer Celery's ping."""
        return self._broadcast("ping", names)

    def _control(self, command: str, queue: str, workers) -> None:
        names = [w.hostname() for w in workers]
        answered = self._broadcast(command, names, queue)
        if answered != set(names):
            raise RuntimeError(f"{command} {queue}: only {sorted(answered)} of {names} answered")

    def _broadcast(self, command: str, names: list[str], *args) -> set[str]:
        from celery import Celery

        app = Celery("zimage-test-control", broker=self.broker.url, set_as_current=False)
        # A connection of its own: kombu's pool would hand out one that a broker restart broke.
        with app.connection_for_write() as connection:
            options = {} if command == "ping" else {"reply": True}  # ping always asks for replies
            replies = getattr(app.control, command)(*args, destination=names, timeout=10, connection=connection, **options)
        return {name for reply in replies for name in reply}

    def queue_depth(self, queue: str) -> int:
        from kombu import Connection

        with Connection(self.broker.url) as conn:
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # noqa: BLE001 - not declared yet: nothing waiting
                return 0

    # ---- project side ----

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(self.bin / "zimage"), *args], env=self.env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"zimage {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def mint(self, skus: int, priority: str = "normal") -> str:
        """A new batch of `skus` SKUs without images (each batch new SKUs: nothing from the cache)."""
        out = self.cli("mint", "--without-image", "--limit", str(skus), "--priority", priority)
        line = next(line for line in out.splitlines() if line.startswith("minted"))
        return line.split(": ", 1)[1].split(", ")[0]

    def launch(self, batch_id: str, force: bool = False) -> subprocess.Popen:
        log = self.root / f"run-{batch_id}.log"
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "run", *(["--force"] if force else []), batch_id],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )  # fmt: skip

    def finish(self, proc: subprocess.Popen, timeout: float = 300) -> dict:
        proc.wait(timeout)
        log = self.root / f"run-{proc.args[-1]}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"run of {proc.args[-1]} failed ({proc.returncode}): {log.read_text(errors='replace')[-4000:]}")
        result = json.loads(lines[-1])
        self.run_ids.append(result["run_id"])
        return result

    def instance(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def state_db(self):
        from resources.state_db import StateDB

        return StateDB(url=f"sqlite:///{Path(self.env['ZIMAGE_HOME']) / 'zimage.sqlite'}")


# ---- reading a run's events ----


def step_executions(instance, run_id: str, step_key: str = GPU_STEP) -> list[dict]:
    """Each time a Celery worker started the step: {"worker", "at", "ended", "loaded_model",
    "load_seconds"}, in order (times are the events' timestamps).

    A redelivered step (its first worker died) shows twice; a model load is counted for the
    execution it happened in."""
    executions: list[dict] = []
    for entry in instance.all_logs(run_id):
        if entry.step_key != step_key:
            continue
        event = entry.dagster_event
        if event is not None and event.event_type_value == "ENGINE_EVENT" and "in celery worker" in (event.message or ""):
            metadata = event.engine_event_data.metadata
            executions.append({"worker": metadata["Celery worker"].value, "at": entry.timestamp, "loaded_model": False, "load_seconds": 0.0, "ended": None})
        elif executions and LOAD_MESSAGE in (entry.user_message or ""):
            executions[-1]["loaded_model"] = True
            seconds = re.search(r" in ([0-9.]+)s$", entry.user_message.strip())
            executions[-1]["load_seconds"] = float(seconds.group(1)) if seconds else 0.0
        elif executions and event is not None and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            executions[-1]["ended"] = entry.timestamp
    return executions


def materialization_metadata(instance, run_id: str, asset: str = GPU_STEP) -> dict:
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            if materialization.asset_key.to_user_string() == asset:
                return {k: v.value for k, v in materialization.metadata.items()}
    return {}


# ---- the run driver: `python tests/celery_harness.py run BATCH_ID` ----


def _run(batch_id: str, force: bool) -> int:
    from dagster import DagsterInstance, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from resources.state_db import StateDB
    from zimage_assets.minting import run_tags
    from zimage_assets.settings import Settings

    settings = Settings.from_env()
    batch = StateDB(url=settings.db_url).batch(batch_id)
    repository = ReconstructableRepository.for_module("zimage_assets.definitions", "defs", working_directory=str(REPO))
    job = repository.get_reconstructable_job("generate_batch")
    started = time.time()
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("batches", [batch_id])
        result = execute_job(
            job,
            instance=instance,
            tags={**run_tags(batch), "dagster/partition": batch_id},
            run_config={"ops": {"product_images": {"config": {"force": force}}}},
            raise_on_error=False,
        )
    print(json.dumps({"run_id": result.run_id, "success": result.success, "started": started, "ended": time.time()}), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "run" and (len(sys.argv) == 3 or sys.argv[2] == "--force"):
        sys.path.insert(0, str(REPO))
        sys.exit(_run(sys.argv[-1], force=len(sys.argv) == 4))
    sys.exit("usage: celery_harness.py run [--force] BATCH_ID")
