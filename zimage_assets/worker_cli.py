"""`zimage worker`: one Celery worker for one GPU (or for the CPU steps), on dagster-celery.

    zimage worker --gpu 0 [--pool gpu-turbo]    the worker of GPU 0: the GPU pool's queue, one batch at a time
    zimage worker --cpu [--concurrency 2]       prompts, checks and publication (the CPU queue)

A GPU worker is `celery -A dagster_celery.app worker --pool solo --concurrency 1` with
CUDA_VISIBLE_DEVICES set to its GPU: each step runs inside the worker's own process, so the
generator's module-level pipeline cache keeps the model loaded from one batch to the next, for
the worker's whole life. The command replaces this process (exec), so its PID is the worker's.
It is the line `dagster-celery worker start -A dagster_celery.app -n NAME -q QUEUE -y celery.yaml
-- --pool solo --concurrency 1` would run, with the Celery configuration of the code location
(`zimage_assets/executors.py`) written where that command writes it: a `dagster_celery_config`
module on the worker's PYTHONPATH (under $DAGSTER_HOME/zimage-workers/NAME/, readable by its owner
only, as it holds the broker URL). `scripts/workers` starts one per GPU of a box.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from zimage_assets.settings import Settings

_GPU = re.compile(r"^(\d{1,3}|GPU-[0-9a-fA-F-]{8,64}|MIG-[0-9a-zA-Z/-]{8,80})$")


class WorkerError(Exception):
    pass


def add_worker_command(subparsers) -> None:
    worker = subparsers.add_parser("worker", help="start a Celery worker for one GPU (or for the CPU steps)")
    which = worker.add_mutually_exclusive_group(required=True)
    which.add_argument("--gpu", help="the GPU this worker owns: its index (or UUID) for CUDA_VISIBLE_DEVICES")
    which.add_argument("--cpu", action="store_true", help="serve the CPU queue (prompts, checks, publication)")
    worker.add_argument("--pool", default="", help="GPU pool = queue served (default ZIMAGE_GPU_POOL)")
    worker.add_argument("--concurrency", type=int, default=2, help="processes of a --cpu worker (default 2)")
    worker.add_argument("--name", default="", help="worker name (default POOL-gpuN, or cpu)")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--dry-run", action="store_true", help="print the worker's command line and exit")
    worker.set_defaults(handler=cmd_worker)


def cmd_worker(args, settings: Settings) -> int:
    try:
        argv, env = worker_command(args, settings)
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shown = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("CUDA_VISIBLE_DEVICES",) if k in env)
    print(f"{shown} {shlex.join(argv)}".strip(), flush=True)
    if args.dry_run:
        return 0
    os.execvpe(argv[0], argv, env)
    return 1  # not reached


def worker_command(args, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The worker's argv and environment; writes its private Celery config module."""
    from zimage_assets.executors import CODE_LOCATION_MODULE

    if settings.executor != "celery":
        raise WorkerError(
            f"ZIMAGE_EXECUTOR is {settings.executor!r}: set ZIMAGE_EXECUTOR=celery here and in the code location's "
            "environment (its runs send their steps to these workers)"
        )
    env = dict(os.environ)
    if args.cpu:
        if args.concurrency < 1:
            raise WorkerError(f"--concurrency {args.concurrency}: use 1 or more")
        queue, name = settings.celery_cpu_queue, args.name or "cpu"
        pool_args = ["--pool", "prefork", "--concurrency", str(args.concurrency)]
    else:
        pool = args.pool or settings.gpu_pool
        if pool != settings.gpu_pool:
            raise WorkerError(
                f"--pool {pool} but this environment's GPU asset claims {settings.gpu_pool!r} (ZIMAGE_MODEL={settings.model}): "
                "give the worker the code location's ZIMAGE_MODEL / ZIMAGE_GPU_POOL"
            )
        if not _GPU.match(args.gpu):
            raise WorkerError(f"--gpu {args.gpu!r}: give one GPU, by index (0, 1, ...) or UUID")
        if re.match(r"^cuda:[1-9]", settings.device):
            raise WorkerError(f"ZIMAGE_DEVICE={settings.device}: a worker sees only its own GPU (as cuda:0); use auto or cuda")
        queue, name = pool, args.name or f"{pool}-gpu{args.gpu}"
        env["CUDA_VISIBLE_DEVICES"] = args.gpu
        pool_args = ["--pool", "solo", "--concurrency", "1"]
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$", name):
        raise WorkerError(f"--name {name!r}: letters, digits, . _ - only")
    env["ZIMAGE_GPU_POOL"] = settings.gpu_pool
    config_dir = write_worker_config(settings, name)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(config_dir), env.get("PYTHONPATH", "")) if p)
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or shutil.which("celery") or "celery"
    argv = [
        celery, "-A", "dagster_celery.app", "worker", "--prefetch-multiplier=1", "--loglevel", args.loglevel,
        "-Q", queue, "-n", f"{name}@%h", "-I", CODE_LOCATION_MODULE, *pool_args,
    ]  # fmt: skip
    return argv, env


def write_worker_config(settings: Settings, name: str) -> Path:
    """$DAGSTER_HOME/zimage-workers/NAME/: `celery.yaml` (for `dagster-celery worker terminate -y`)
    and the `dagster_celery_config` module that `dagster_celery.app` reads at import."""
    import yaml
    from dagster_celery.cli import get_validated_config

    from zimage_assets.executors import celery_executor_config

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise WorkerError("DAGSTER_HOME is not set: workers record their runs' events in the same Dagster instance")
    folder = Path(home) / "zimage-workers" / name
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    yaml_path = folder / "celery.yaml"
    _write_private(yaml_path, yaml.safe_dump({"execution": {"config": celery_executor_config(settings, resolve_secrets=True)}}))
    config = get_validated_config(str(yaml_path))  # Dagster's own schema for this block
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}"]
    lines += [f"{key} = {value!r}" for key, value in config["config_source"].items()]
    _write_private(folder / "dagster_celery_config.py", "\n".join(lines) + "\n")
    return folder


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
