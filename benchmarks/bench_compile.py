"""How many graphs torch.compile makes for a real batch of varied catalog prompts, per ZIMAGE_COMPILE mode.

    python benchmarks/bench_compile.py [--items 48] [--size 64] [--backend inductor] [--max-sequence-length 1024]

Mints one batch from the bundled sample catalog (its prompts come from the real product_prompts
asset: different products, views and lengths), then generates it with the tiny model through the
generator resource, once per mode, counting torch._dynamo's compiled graphs and timing the batch:

    off       no compilation (the reference time)
    buckets   ZIMAGE_COMPILE=buckets: captions padded (masked) to 64/128/256/... tokens, static lengths
    dynamic   ZIMAGE_COMPILE=dynamic: symbolic shapes
    plain     compile_repeated_blocks(fullgraph=True) as diffusers documents it, torch._dynamo's
              default recompile limit (8): a shape past it runs uncompiled, with a warning

The tiny model's byte-level tokenizer makes about one token per character (Qwen's makes one per
3-4), hence the default --max-sequence-length 1024 so that prompts vary in length as real ones do
under the generator's 256. On a CPU the times measure compilation, not GPU speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import _environment, _job  # noqa: E402  (one fresh project home, the same way)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: only dynamo's tracing)")
    parser.add_argument("--max-sequence-length", type=int, default=1024)
    parser.add_argument("--modes", default="off,buckets,dynamic,plain")
    parser.add_argument("--out", default="bench_compile.json")
    args = parser.parse_args()
    args.model, args.catalog = "tiny", ""
    home = Path(tempfile.mkdtemp(prefix="zimage-compile-"))
    _environment(args, home)

    import dagster as dg
    import torch._dynamo
    from torch._dynamo.utils import counters

    import resources.speed_options as speed_options
    from resources.generator import ZImageGenerator
    from resources.state_db import StateDB
    from zimage_assets.definitions import defs
    from zimage_assets.domain.specs import build_spec
    from zimage_assets.settings import Settings

    settings = Settings.from_env()
    with dg.DagsterInstance.get() as instance:
        _job(defs, instance, "ingest_catalog", {"ops": {"sku_catalog": {"config": {"source": "", "format": "auto"}}}})
        (batch_id, *_) = _job(defs, instance, "mint_batches_job", {"ops": {"mint_batches_op": {"config": {
            "without_current_image": True, "limit": args.items, "max_items_per_batch": args.items}}}}).output_for_node("mint_batches_op")
        _job(defs, instance, "generate_batch", {}, partition_key=batch_id, asset_selection=[dg.AssetKey("product_prompts")])
    items = StateDB(url=settings.db_url).batch_items(batch_id)
    lengths = sorted(len(i["prompt"]) for i in items)
    report = {"benchmark": "bench_compile", "backend": args.backend, "items": len(items), "size": args.size, "batch_size": args.batch_size,
              "max_sequence_length": args.max_sequence_length, "prompt_chars": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]},
              "buckets": speed_options.prompt_buckets(args.max_sequence_length), "modes": {}}
    default_limit = torch._dynamo.config.recompile_limit
    for mode in args.modes.split(","):
        torch._dynamo.reset()
        torch._dynamo.config.recompile_limit = default_limit
        counters.clear()
        generator = ZImageGenerator(model="tiny", models_dir=str(home / "models"), batch_size=args.batch_size, device="cpu",
                                    max_sequence_length=args.max_sequence_length, compile=mode in ("buckets", "dynamic"),
                                    compile_mode=mode if mode in ("buckets", "dynamic") else "buckets", compile_backend=args.backend)
        model = generator.model_info()
        specs = [build_spec(model, prompt=i["prompt"], negative_prompt="", width=args.size, height=args.size, seed=i["seed"]) for i in items]
        pipe = generator.pipeline()
        if mode == "plain":  # diffusers' documented call on the uncompiled pipeline (runs last: it changes the cached "off" one)
            pipe.transformer.compile_repeated_blocks(fullgraph=True, backend=args.backend)
        started = time.perf_counter()
        made = sum(1 for _ in generator.generate(specs))
        seconds = time.perf_counter() - started
        graphs = counters["stats"].get("unique_graphs", 0)
        report["modes"][mode] = {"graphs": graphs, "seconds": round(seconds, 2), "images": made,
                                 "recompile_limit": torch._dynamo.config.recompile_limit, "limit_reached": graphs >= torch._dynamo.config.recompile_limit}
        print(f"{mode:<8} {graphs:>3} graphs, {seconds:7.1f} s for {made} images ({args.backend}); recompile limit "
              f"{torch._dynamo.config.recompile_limit}{' REACHED: later shapes ran uncompiled' if report['modes'][mode]['limit_reached'] else ''}",
              flush=True)
        del pipe
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"prompts of {report['prompt_chars']} characters; buckets {report['buckets']}; wrote {args.out}")


if __name__ == "__main__":
    main()
