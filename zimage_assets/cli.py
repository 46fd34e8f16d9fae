"""`zimage`: run the project's jobs from a terminal, through Dagster, on the same instance as the UI.

    zimage demo                      ingest the sample catalog, mint a small batch, generate, publish
    zimage ingest [--source PATH] [--format auto|generic|magento|shopify|woocommerce] [--map COLUMN=NAME ...]
    zimage mint [--sku S ...] [--category PATH ...] [--without-image] [--limit N] [--run]
    zimage run BATCH_ID [--force]    generate and publish one minted batch now, in this process
    zimage where                     where the data, the images and the UI are
    zimage worker --gpu N | --cpu    a Celery worker for one GPU, or for the CPU steps (ZIMAGE_EXECUTOR=celery)
    zimage api [--host H] [--port P] serve the generations API (zimage_assets/api/)
    zimage intake [--drain]          record requests from the RabbitMQ queues
    zimage api-key create|list|revoke  the API's keys

Every command is a real Dagster run recorded under DAGSTER_HOME, so `dagster dev` shows it.
Errors are printed as their cause in one or two lines (exit status 1; zimage_assets/cli_errors.py),
not a traceback; settings and arguments are checked before anything runs or is minted. Ctrl-C
stops a run (exit status 130); running the command again resumes it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from zimage_assets.cli_errors import INTERRUPTED, exception_message, hide_password, is_interrupted, run_failure_message
from zimage_assets.settings import PACKAGE_DIR, SAMPLE_CATALOG, Settings
from zimage_assets.worker_cli import add_worker_command

DEMO_SKUS = 6
# The demo starts with SKUs whose photos the sample ships (real products: photo and scene views) and
# one whose photos it does not (its views fall back to text-to-image, marked illustrative).
DEMO_FIRST = ["MS09-M-Blue", "MH01-M-Black", "WSH08-28-Purple", "MSH09-32-Blue"]
_LOG_LEVEL = "CRITICAL"


class CliError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    global _LOG_LEVEL
    _LOG_LEVEL = "INFO" if args.verbose else "CRITICAL"
    if not args.verbose:  # libraries' retry warnings (a database down) would bury the one message
        logging.getLogger().setLevel(logging.CRITICAL)
    try:
        _check_arguments(args)  # before any slow start-up
        settings = Settings.from_env()
        _ensure_dagster_home(settings)
        return args.handler(args, settings)
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`zimage where | head -1`): stop quietly
        _silence_stdout()
        return 1
    except (CliError, ValueError) as exc:  # our messages; bad environment variable values
        print(f"error: {hide_password(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - anything else: its cause in one or two lines, not a traceback
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exception_message(exc)}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _check_arguments(args) -> None:
    """What can be wrong with the command line alone, checked before Dagster starts."""
    fmt = getattr(args, "format", None)
    if fmt is not None:
        from zimage_assets.domain.catalog import FORMATS

        if fmt not in FORMATS:
            raise CliError(f"unknown catalog format {fmt!r}; use one of: {', '.join(FORMATS)}")
    for pair in getattr(args, "map", None) or []:
        if pair.count("=") != 1 or not all(part.strip() for part in pair.split("=")):
            raise CliError(f"--map {pair!r}: write YOUR_COLUMN=NAME, e.g. --map ProductCode=sku")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zimage", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run logs")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="end to end on the embedded defaults")
    demo.add_argument("--skus", type=int, default=DEMO_SKUS, help=f"SKUs in the demo batch (default {DEMO_SKUS})")
    demo.set_defaults(handler=cmd_demo)

    ingest = sub.add_parser("ingest", help="read a catalog into the SKU table")
    ingest.add_argument("--source", default="", help="file path or s3:// URI (default ZIMAGE_CATALOG_SOURCE)")
    ingest.add_argument("--format", default="auto", help="auto, generic, magento, shopify or woocommerce")
    ingest.add_argument("--map", action="append", default=[], metavar="COLUMN=NAME",
                        help="rename a column of the file, e.g. --map ProductCode=sku (repeatable)")
    ingest.set_defaults(handler=cmd_ingest)

    mint = sub.add_parser("mint", help="mint batches for chosen SKUs")
    mint.add_argument("--sku", action="append", default=[], help="a SKU (repeatable)")
    mint.add_argument("--category", action="append", default=[], help="category path prefix, e.g. Men/Tops (repeatable)")
    mint.add_argument("--without-image", action="store_true", help="SKUs with no published image")
    mint.add_argument("--limit", type=int, default=0, help="at most N SKUs")
    mint.add_argument("--max-items", type=int, default=0, help="items per batch (default ZIMAGE_MAX_ITEMS_PER_BATCH)")
    mint.add_argument("--priority", default="normal", choices=["high", "normal", "low"])
    mint.add_argument("--callback-url", default="", help="post the batches' completion here too (allowed hosts only)")
    mint.add_argument("--run", action="store_true", help="generate the batches now in this process")
    mint.set_defaults(handler=cmd_mint)

    run = sub.add_parser("run", help="generate and publish one batch now")
    run.add_argument("batch_id")
    run.add_argument("--force", action="store_true", help="regenerate even if images exist")
    run.set_defaults(handler=cmd_run)

    where = sub.add_parser("where", help="print where everything is")
    where.set_defaults(handler=cmd_where)
    add_worker_command(sub)

    from zimage_assets.api import intake, keys, server  # requests from other systems: their own module

    server.add_parser(sub)
    intake.add_parser(sub, CliError)
    keys.add_parser(sub, CliError)
    return parser


# ---- commands ----


def cmd_demo(args, settings: Settings) -> int:
    print(f"Z-Image catalog demo: model {settings.model!r}, data in {settings.home}")
    _preflight(settings, generating=True)
    _ingest(settings, source="", fmt="auto")
    first = DEMO_FIRST[: args.skus] if settings.catalog_source == str(SAMPLE_CATALOG) else []
    batch_ids = _mint(settings, {"skus": first, "without_current_image": True}) if first else []
    minted = _sku_count(settings, batch_ids)
    if minted < args.skus:
        batch_ids += _mint(settings, {"without_current_image": True, "limit": args.skus - minted})
    if not batch_ids:
        raise CliError("every SKU of the sample catalog already has an image; delete ZIMAGE_HOME to start over")
    for batch_id in batch_ids:
        _run_batch(settings, batch_id, force=False)
    _print_locations(settings, batch_ids)
    return 0


def _sku_count(settings: Settings, batch_ids: list[str]) -> int:
    from resources.state_db import StateDB

    db = StateDB(url=settings.db_url)
    return sum((db.batch(b) or {}).get("sku_count", 0) for b in batch_ids)


def cmd_ingest(args, settings: Settings) -> int:
    _preflight(settings, generating=False)
    _ingest(settings, source=args.source, fmt=args.format, mapping=dict(pair.split("=", 1) for pair in args.map))
    return 0


def cmd_mint(args, settings: Settings) -> int:
    _preflight(settings, generating=args.run)  # a run that cannot start fails before anything is minted
    config = {
        "skus": [sku.strip() for sku in args.sku if sku.strip()],
        "categories": args.category,
        "without_current_image": args.without_image,
        "limit": args.limit,
        "max_items_per_batch": args.max_items,
        "priority": args.priority,
        "callback_url": args.callback_url,
    }
    batch_ids = _mint(settings, config)
    if args.run:
        for batch_id in batch_ids:
            _run_batch(settings, batch_id, force=False)
        _print_locations(settings, batch_ids)
    elif batch_ids:
        print("A running `dagster dev` (its sensor) launches them; or run one now with: zimage run BATCH_ID")
    return 0


def cmd_run(args, settings: Settings) -> int:
    _preflight(settings, generating=True)
    _run_batch(settings, args.batch_id, force=args.force)
    _print_locations(settings, [args.batch_id])
    return 0


def cmd_where(args, settings: Settings) -> int:
    _print_locations(settings, [])
    return 0


# ---- Dagster plumbing ----


def _definitions():
    from zimage_assets.definitions import defs

    return defs


def _instance():
    from dagster import DagsterInstance

    return DagsterInstance.get()


def _execute(job_name: str, *, run_config: dict | None = None, partition_key: str | None = None, tags: dict | None = None,
             run_id: str | None = None):
    job = _definitions().resolve_job_def(job_name)
    # The full event log is in the UI; the terminal gets one line per step from us.
    run_config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": _LOG_LEVEL}}}}
    with _instance() as instance:
        result = job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
            run_id=run_id,
        )
    if not result.success:
        if is_interrupted(result):
            raise KeyboardInterrupt
        raise CliError(f"{job_name} failed: {run_failure_message(result)}\n(run {result.run_id}; details in the Dagster UI)")
    return result


def _preflight(settings: Settings, *, generating: bool) -> None:
    """Fail before minting or starting a run when the configuration cannot work here: the
    project database unreachable; for generating commands, the device, dtype or weights, and an
    image store that cannot be written."""
    from resources import build_resources

    try:  # Dagster's own storage (SQLite under DAGSTER_HOME, or PostgreSQL by its dagster.yaml)
        with _instance() as instance:
            instance.get_runs(limit=1)
    except Exception as exc:  # noqa: BLE001 - every storage has its own errors
        raise CliError(f"cannot reach Dagster's storage (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}): {exception_message(exc)}") from None
    resources = build_resources(settings)
    try:
        with resources["state_db"].engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - every driver has its own errors
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CliError(f"cannot reach the project database {hide_password(settings.db_url)} (ZIMAGE_DB_URL): {cause}") from None
    if not generating:
        return
    from resources.generator import GeneratorError
    from resources.image_store import StoreError

    try:
        resources["generator"].preflight()
    except GeneratorError as exc:
        raise CliError(str(exc)) from None
    try:
        resources["image_store"].check_writable()
    except StoreError as exc:
        raise CliError(f"image store not writable: {exc}") from None


def _metadata(result, asset_name: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset_name:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def _ingest(settings: Settings, *, source: str, fmt: str, mapping: dict | None = None) -> None:
    config = {"source": source, "format": fmt, "column_mapping": mapping or {}}
    result = _execute("ingest_catalog", run_config={"ops": {"sku_catalog": {"config": config}}})
    md = _metadata(result, "sku_catalog")
    print(
        f"catalog {md.get('source')} ({md.get('format')}): {md.get('rows_read')} rows, {md.get('accepted')} SKUs accepted, "
        f"{md.get('rejected_rows')} rows rejected; {md.get('new_skus')} new, {md.get('changed_skus')} changed"
    )


def _mint(settings: Settings, config: dict) -> list[str]:
    result = _execute("mint_batches_job", run_config={"ops": {"mint_batches_op": {"config": config}}})
    batch_ids = result.output_for_node("mint_batches_op")
    print(f"minted {len(batch_ids)} batch(es): {', '.join(batch_ids) or '-'}")
    busy = _output_metadata(result, "mint_batches_op").get("in_open_batches") or []
    if busy:
        print(f"  not minted, already in an open batch (or outside the other filters): {', '.join(busy[:10])}{' ...' if len(busy) > 10 else ''}")
    return batch_ids


def _output_metadata(result, node: str) -> dict:
    for event in result.all_events:
        if event.is_successful_output and event.step_key == node:
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    return {}


def _run_batch(settings: Settings, batch_id: str, *, force: bool) -> None:
    from functools import partial

    from dagster._core.utils import make_new_run_id

    from resources.state_db import StateDB
    from sensors.launcher import batch_run_tags, ensure_gpu_pool_limit
    from zimage_assets.assets.images import product_images
    from zimage_assets.partitions import batch_partitions
    from zimage_assets.run_workers import BatchBusy, before_cli_run, run_is_live

    state_db = StateDB(url=settings.db_url)
    batch = state_db.batch(batch_id.strip())
    if batch is None:
        raise CliError(f"unknown batch {batch_id!r}")
    batch_id = batch["batch_id"]
    with _instance() as instance:
        instance.add_dynamic_partitions(batch_partitions.name, [batch_id])  # idempotent
        ensure_gpu_pool_limit(instance)
        try:  # through the GPU pool, like queued runs; never a second run of one batch
            worker = before_cli_run(instance, state_db, batch_id, product_images.op.pool, say=lambda text: print(text, file=sys.stderr))
        except BatchBusy as exc:
            raise CliError(str(exc)) from None
    run_id = make_new_run_id()
    try:
        result = _execute(
            "generate_batch",
            partition_key=batch_id,
            tags={**batch_run_tags(batch), **worker},
            run_config={"ops": {"product_images": {"config": {"force": force}}}},
            run_id=run_id,
        )
    except BaseException:  # failed or interrupted: the batch is not left `running`
        with _instance() as instance:
            state_db.mark_batch_failed(batch_id, run_id, partial(run_is_live, instance))
        raise
    images = _metadata(result, "product_images")
    published = _metadata(result, "published_images")
    print(
        f"{batch_id}: {images.get('items')} items -> {images.get('generated')} generated, "
        f"{images.get('cache_hits')} from cache, {images.get('already_stored')} already stored, "
        f"{images.get('shared_specs')} shared with another item; "
        f"{images.get('seconds_per_image')} s/image on {images.get('device')}; {published.get('published')} published"
    )
    _print_verdicts(images, published)


def _print_verdicts(images: dict, published: dict) -> None:
    """What the safety and quality gates decided: published (PASS), waiting for review, blocked."""
    counts = published.get("verdicts") or {}
    reasons = images.get("reasons") or {}
    print(
        f"  gates ({images.get('quality_mode')} mode): {counts.get('PASS', 0)} PASS published, "
        f"{counts.get('REVIEW', 0)} REVIEW waiting for a person, {counts.get('BLOCK', 0)} BLOCK not published"
        + (f" ({images.get('blocked_prompts')} blocked prompts never generated)" if images.get("blocked_prompts") else "")
        + (f"; {images.get('regenerated_items')} item(s) regenerated" if images.get("regenerated_items") else "")
        + (f"; {images.get('fixed_images')} fixed" if images.get("fixed_images") else "")
    )
    modes = images.get("modes") or {}
    if modes:
        print(f"  made from the merchant's photos: {modes.get('photo', 0)} photo (no model), {modes.get('scene', 0)} scene "
              f"(painted around the real product); {modes.get('text', 0)} text-to-image (illustrative)")
    if images.get("quality_mode") == "smoke":
        print("  (smoke mode: the tiny model draws noise, so only structural checks judge it; ZIMAGE_QUALITY_MODE=strict catches the noise)")
    if reasons:
        print("  reasons: " + ", ".join(f"{code} x{n}" for code, n in list(reasons.items())[:8]))
    if counts.get("REVIEW"):
        print("  review them: materialize review_queue (it writes a CSV), fill it in, run the apply_review_decisions job")


def _print_locations(settings: Settings, batch_ids: list[str]) -> None:
    from resources import build_resources

    store = build_resources(settings)["image_store"]
    root = os.environ.get("ZIMAGE_PROJECT_ROOT") or str(Path.cwd())
    print("\nWhere things are:")
    print(f"  image store         {store.location()}")
    print(f"  published images    {store.location().rstrip('/')}/public")
    for batch_id in batch_ids:
        from zimage_assets.domain.storage_keys import batch_file_key

        print(f"  manifest {batch_id}  {store.url(batch_file_key('manifests', batch_id, 'manifest.csv'))}")
        print(f"  contact sheet       {store.url(batch_file_key('previews', batch_id, 'contact_sheet.jpg'))}")
    print(f"  project database    {hide_password(settings.db_url)}")
    print(f"  Dagster instance    {os.environ['DAGSTER_HOME']}")
    print("  Dagster UI          run `scripts/dev` (or: DAGSTER_HOME=" + os.environ["DAGSTER_HOME"] + f" .venv/bin/dagster dev -w {root}/workspace.yaml)")
    print("                      then open http://127.0.0.1:3000")


def _ensure_dagster_home(settings: Settings) -> None:
    """Default DAGSTER_HOME to ZIMAGE_HOME/dagster, using the repository's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    repo_config = PACKAGE_DIR.parent / "dagster.yaml"
    if not config.exists():
        if not repo_config.exists():
            raise CliError("DAGSTER_HOME is not set and no dagster.yaml was found: set DAGSTER_HOME")
        config.symlink_to(repo_config)
    os.environ["DAGSTER_HOME"] = str(home)


if __name__ == "__main__":
    sys.exit(main())
