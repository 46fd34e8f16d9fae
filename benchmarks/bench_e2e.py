"""A real Dagster batch end to end against the bare generator loop on the same specs.

    python benchmarks/bench_e2e.py --model full-random --items 64 --size 1024 --out e2e.json   # on a CUDA GPU
    python benchmarks/bench_e2e.py --model tiny --items 6 --size 64 --out e2e.json             # anywhere (the test suite)

In one process, on a fresh project home and Dagster instance (SQLite, local image store, embedded
cache): ingest the bundled sample catalog and mint one batch of `--items` SKU x view items with
every view at `--size` (the default templates' prompts); load and warm the model; time the bare
loop (`ZImageGenerator.generate` over the batch's specs, images kept in memory); then run the
`generate_batch` job (prompts -> images with gates, PNG encoding, store, receipts -> checks ->
publication) and time its product_images step from Dagster's event log. Speed options come from
the environment (ZIMAGE_COMPILE, ZIMAGE_ATTENTION_BACKEND, ...). The gates run in smoke mode and
one attempt per item: random weights draw noise, which strict gates would regenerate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny | full-random (CUDA) | turbo with ZIMAGE_MODEL_PATH")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--catalog", default="", help="catalog file (default: the bundled sample)")
    parser.add_argument("--home", default="", help="project home (default: a new temporary folder)")
    parser.add_argument("--out", default="bench_e2e.json")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="zimage-e2e-"))
    _environment(args, home)

    import dagster as dg
    import torch

    from resources import build_resources
    from resources.state_db import StateDB
    from zimage_assets.definitions import defs
    from zimage_assets.domain.specs import build_spec
    from zimage_assets.minting import run_tags
    from zimage_assets.partitions import batch_partitions
    from zimage_assets.settings import Settings

    settings = Settings.from_env()
    generator = build_resources(settings)["generator"]
    report = {"benchmark": "bench_e2e", "model": args.model, "size": args.size, "batch_size": args.batch_size, "home": str(home),
              "speed_options": generator.speed_options().describe(), "quality_mode": settings.quality_mode,
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    with dg.DagsterInstance.get() as instance:
        _job(defs, instance, "ingest_catalog", {"ops": {"sku_catalog": {"config": {"source": args.catalog, "format": "auto"}}}})
        minted = _job(defs, instance, "mint_batches_job", {"ops": {"mint_batches_op": {"config": {
            "without_current_image": True, "limit": args.items, "max_items_per_batch": args.items}}}}).output_for_node("mint_batches_op")
        state_db = StateDB(url=settings.db_url)
        batch_id = max(minted, key=lambda b: state_db.batch(b)["item_count"])  # SKUs are not split: the fullest batch
        _job(defs, instance, "generate_batch", {}, partition_key=batch_id, asset_selection=[dg.AssetKey("product_prompts")])
        items = state_db.batch_items(batch_id)
        model = generator.model_info()
        specs = list({s.spec_hash: s for s in (
            build_spec(model, prompt=i["prompt"], negative_prompt=i["negative_prompt"] or "", width=i["width"], height=i["height"], seed=i["seed"])
            for i in items)}.values())  # fmt: skip
        report.update(batch_id=batch_id, items=len(items), distinct_specs=len(specs))

        started = time.perf_counter()
        generator.pipeline()
        list(generator.generate(specs[: args.batch_size]))  # warm-up: kernels, compiled shapes
        report["load_and_warmup_seconds"] = round(time.perf_counter() - started, 2)
        bare = _bare_loop(generator, specs)

        result = _job(defs, instance, "generate_batch", {"ops": {"product_images": {"config": {"force": False}}}},
                      partition_key=batch_id, tags=run_tags(state_db.batch(batch_id)))
        steps = _step_seconds(instance, result.run_id)
        images = {k: v.value for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "product_images"
                  for k, v in e.materialization.metadata.items()}
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        invariance = {k: v.value for e in result.get_asset_check_evaluations() if e.check_name == "batch_invariance"
                      for k, v in e.metadata.items() if k != "compared_images"}
        bare_again = _bare_loop(generator, specs)  # the GPU as it is after the run: drift shows here

    generated = images.get("generated", 0)
    e2e_seconds = steps.get("product_images", 0.0)
    bare_seconds = (bare + bare_again) / 2
    report.update(
        bare_loop={"seconds": round(bare, 3), "seconds_again": round(bare_again, 3), "images": len(specs),
                   "images_per_second": round(len(specs) / bare_seconds, 4)},
        dagster={"product_images_step_seconds": round(e2e_seconds, 3), "steps_seconds": steps, "generated": generated,
                 "generation_seconds": images.get("generation_seconds"), "images_per_second_of_step": round(generated / e2e_seconds, 4) if e2e_seconds else 0.0,
                 "checks_passed": checks, "batch_invariance": invariance, "run_id": result.run_id},
        ratio_dagster_vs_bare=round((generated / e2e_seconds) / (len(specs) / bare_seconds), 4) if e2e_seconds and generated else 0.0,
        cpu_seconds_per_image_outside_generation=round((e2e_seconds - (images.get("generation_seconds") or 0)) / generated, 4) if generated else None,
    )
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(f"{report['items']} items at {args.size}px on {report['gpu'] or 'CPU'}: bare loop {report['bare_loop']['images_per_second']} img/s, "
          f"Dagster product_images {report['dagster']['images_per_second_of_step']} img/s -> {report['ratio_dagster_vs_bare']}x "
          f"({report['cpu_seconds_per_image_outside_generation']} s/image outside generation); wrote {args.out}")


def _environment(args, home: Path) -> None:
    """Project settings for this run: the chosen model, every view at --size, smoke gates, one attempt."""
    from zimage_assets.settings import DEFAULT_TEMPLATES

    templates = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    for view in templates["views"].values():
        view["width"] = view["height"] = args.size
    home.mkdir(parents=True, exist_ok=True)
    (home / "templates.yaml").write_text(yaml.safe_dump(templates))
    dagster_home = home / "dagster"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ.update({
        "ZIMAGE_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "ZIMAGE_MODEL": args.model, "ZIMAGE_TEMPLATES": str(home / "templates.yaml"),
        "ZIMAGE_BATCH_SIZE": str(args.batch_size), "ZIMAGE_QUALITY_MODE": "smoke", "ZIMAGE_MAX_ATTEMPTS": "1",
        "ZIMAGE_MAX_ITEMS_PER_BATCH": str(args.items), "ZIMAGE_METRICS_FILE": "",
    })  # fmt: skip
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _job(defs, instance, name: str, run_config: dict, **kwargs):
    run_config = {**run_config, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the event log keeps everything
    result = defs.resolve_job_def(name).execute_in_process(run_config=run_config, instance=instance, raise_on_error=True, **kwargs)
    assert result.success, f"{name} failed"
    return result


def _bare_loop(generator, specs) -> float:
    import torch

    started = time.perf_counter()
    made = sum(1 for _ in generator.generate(specs))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    assert made == len(specs)
    return time.perf_counter() - started


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step of a run, from its STEP_START and STEP_SUCCESS events."""
    starts, out = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in starts:
            out[event.step_key] = round(entry.timestamp - starts[event.step_key], 3)
    return out


if __name__ == "__main__":
    main()
