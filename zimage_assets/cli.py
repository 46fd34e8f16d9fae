"""`zimage`: run the project's jobs from a terminal, through Dagster, on the same instance as the UI.

    zimage demo                      ingest the sample catalog, mint a small batch, generate, publish
    zimage ingest [--source PATH] [--format auto|generic|magento|shopify|woocommerce]
    zimage mint [--sku S ...] [--category PATH] [--without-image] [--limit N] [--run]
    zimage run BATCH_ID [--force]    generate and publish one minted batch now, in this process
    zimage where                     where the data, the images and the UI are

Every command is a real Dagster run recorded under DAGSTER_HOME, so `dagster dev` shows it.
Errors are printed as one clear message (exit status 1), not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zimage_assets.settings import PACKAGE_DIR, SAMPLE_CATALOG, Settings

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
    try:
        settings = Settings.from_env()
        _ensure_dagster_home(settings)
        return args.handler(args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad environment variable values
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zimage", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run logs")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="end to end on the embedded defaults")
    demo.add_argument("--skus", type=int, default=DEMO_SKUS, help=f"SKUs in the demo batch (default {DEMO_SKUS})")
    demo.set_defaults(handler=cmd_demo)

    ingest = sub.add_parser("ingest", help="read a catalog into the SKU table")
    ingest.add_argument("--source", default="", help="file path or s3:// URI (default ZIMAGE_CATALOG_SOURCE)")
    ingest.add_argument("--format", default="auto")
    ingest.set_defaults(handler=cmd_ingest)

    mint = sub.add_parser("mint", help="mint batches for chosen SKUs")
    mint.add_argument("--sku", action="append", default=[], help="a SKU (repeatable)")
    mint.add_argument("--category", default="", help="category path prefix, e.g. Men/Tops")
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
    return parser


# ---- commands ----


def cmd_demo(args, settings: Settings) -> int:
    print(f"Z-Image catalog demo: model {settings.model!r}, data in {settings.home}")
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
    _ingest(settings, source=args.source, fmt=args.format)
    return 0


def cmd_mint(args, settings: Settings) -> int:
    config = {
        "skus": args.sku,
        "category": args.category,
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


def _execute(job_name: str, *, run_config: dict | None = None, partition_key: str | None = None, tags: dict | None = None):
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
        )
    if not result.success:
        raise CliError(f"{job_name} failed: {_failure_message(result)}\n(run {result.run_id}; details in the Dagster UI)")
    return result


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "dagster._core.errors" in (error.cls_name or ""):
                error = error.cause
            message = (error.message or str(error.cls_name)).strip().splitlines()[0]
            prefix = f"{error.cls_name}: "
            return message.split(prefix, 1)[1] if prefix in message else message
    return "see the run's logs"


def _metadata(result, asset_name: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset_name:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def _ingest(settings: Settings, *, source: str, fmt: str) -> None:
    result = _execute("ingest_catalog", run_config={"ops": {"sku_catalog": {"config": {"source": source, "format": fmt}}}})
    md = _metadata(result, "sku_catalog")
    print(
        f"catalog {md.get('source')} ({md.get('format')}): {md.get('rows_read')} rows, {md.get('accepted')} SKUs accepted, "
        f"{md.get('rejected_rows')} rows rejected; {md.get('new_skus')} new, {md.get('changed_skus')} changed"
    )


def _mint(settings: Settings, config: dict) -> list[str]:
    result = _execute("mint_batches_job", run_config={"ops": {"mint_batches_op": {"config": config}}})
    batch_ids = result.output_for_node("mint_batches_op")
    print(f"minted {len(batch_ids)} batch(es): {', '.join(batch_ids) or '-'}")
    return batch_ids


def _run_batch(settings: Settings, batch_id: str, *, force: bool) -> None:
    from resources.state_db import StateDB
    from zimage_assets.minting import run_tags
    from zimage_assets.partitions import batch_partitions

    batch = StateDB(url=settings.db_url).batch(batch_id)
    if batch is None:
        raise CliError(f"unknown batch {batch_id!r}")
    with _instance() as instance:
        instance.add_dynamic_partitions(batch_partitions.name, [batch_id])  # idempotent
    result = _execute(
        "generate_batch",
        partition_key=batch_id,
        tags=run_tags(batch),
        run_config={"ops": {"product_images": {"config": {"force": force}}}},
    )
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
    print(f"  project database    {settings.db_url}")
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
