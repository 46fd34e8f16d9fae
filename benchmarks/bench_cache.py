"""Cold vs warm generation of the same SKUs with the Redis result cache.

    .venv/bin/python benchmarks/bench_cache.py [--skus N] [--redis URL] [--templates YAML] [--repeat R]

In a temporary project home (SQLite tables, local image folder, a Dagster test instance) with
ZIMAGE_CACHE_URL pointing at Redis (default redis://127.0.0.1:6379/0, under a key prefix of its
own that is deleted afterwards), it ingests the sample catalog, then for each repeat:
  cold   a batch of N SKUs with an empty cache: every distinct spec is generated;
  warm   a new batch of the same, unchanged SKUs: every image comes from the Redis cache;
  rerun  the warm batch run again: everything is already stored (no cache, no generator).
It times the product_images step (real Dagster runs; prompts are materialized beforehand; the model
is loaded before timing) and prints seconds, images asked of the generator, cache hits and the
cold/warm ratio. The model is ZIMAGE_MODEL (default: the tiny random Z-Image on CPU), the image
sizes those of --templates (default: the small test templates). It asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=6, help="SKUs per batch (Men/Tops SKUs get 4 views each)")
    parser.add_argument("--redis", default=os.environ.get("ZIMAGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--templates", default=str(REPO / "tests" / "fixtures" / "templates_small.yaml"))
    parser.add_argument("--repeat", type=int, default=3, help="cold/warm pairs to run")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="zimage-bench-cache-"))
    prefix = f"zimage-bench:{uuid.uuid4().hex[:8]}:"
    os.environ.update(
        {
            "ZIMAGE_HOME": str(home),
            "ZIMAGE_CACHE_URL": args.redis,
            "ZIMAGE_CACHE_KEY_PREFIX": prefix,
            "ZIMAGE_TEMPLATES": args.templates,
            "ZIMAGE_METRICS_FILE": "",
            "HF_HUB_OFFLINE": "1",
        }
    )
    os.environ.setdefault("ZIMAGE_MODELS_DIR", str(Path(tempfile.gettempdir()) / "zimage-models"))

    import dagster as dg
    import redis

    from jobs.batch_jobs import mint_batches_job
    from resources import build_resources
    from zimage_assets.assets.catalog import sku_catalog
    from zimage_assets.assets.images import product_images
    from zimage_assets.assets.prompts import product_prompts
    from zimage_assets.settings import Settings

    client = redis.Redis.from_url(args.redis, socket_timeout=2)
    client.ping()
    settings = Settings.from_env()
    resources = build_resources(settings)
    state_db = resources["state_db"]
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def materialize(assets, batch_id=None, config=None):
        result = dg.materialize(
            assets, partition_key=batch_id, resources=resources, instance=instance, run_config={**(config or {}), **quiet}
        )
        assert result.success
        return result

    def images_step(batch_id: str) -> tuple[float, dict]:
        started = time.perf_counter()
        result = materialize([product_images], batch_id)
        seconds = time.perf_counter() - started
        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "product_images"]
        return seconds, {k: v.value for k, v in event.materialization.metadata.items()}

    def new_batch(skus: list[str]) -> str:
        result = mint_batches_job.execute_in_process(
            run_config={"ops": {"mint_batches_op": {"config": {"skus": skus}}}, **quiet}, resources=resources, instance=instance
        )
        (batch_id,) = result.output_for_node("mint_batches_op")
        instance.add_dynamic_partitions("batches", [batch_id])
        materialize([product_prompts], batch_id)
        return batch_id

    try:
        with dg.instance_for_test() as instance:
            materialize([sku_catalog], config={"ops": {"sku_catalog": {"config": {"source": "", "format": "auto"}}}})
            started = time.perf_counter()
            resources["generator"].pipeline()  # load once, outside the timings
            print(f"model {settings.model!r}: loaded in {time.perf_counter() - started:.2f}s; Redis {args.redis} (prefix {prefix})")
            # One SKU per distinct look (sizes of one colour share their images): no repeat can hit
            # the cache with another repeat's images.
            candidates = [sku for sku, _ in state_db.select_skus(category="Men/Tops")]
            looks = {}
            for sku, product in state_db.products(candidates).items():
                looks.setdefault(product["content_hash"], sku)
            distinct = sorted(looks.values())
            rows = []
            for repeat in range(args.repeat):
                skus = distinct[repeat * args.skus : (repeat + 1) * args.skus]
                cold_batch = new_batch(skus)
                cold_s, cold = images_step(cold_batch)
                state_db.set_batch_status(cold_batch, "published")  # close it so its SKUs can be minted again
                warm_batch = new_batch(skus)
                warm_s, warm = images_step(warm_batch)
                rerun_s, rerun = images_step(warm_batch)
                rows.append((cold_s, warm_s, rerun_s))
                print(
                    f"repeat {repeat + 1}: {cold['items']} items\n"
                    f"  cold   {cold_s:7.3f}s  generator images {cold['generated']:3d}  cache hits {cold['cache_hits']:3d}  "
                    f"hit rate {cold['cache_hit_rate']:.2f}\n"
                    f"  warm   {warm_s:7.3f}s  generator images {warm['generated']:3d}  cache hits {warm['cache_hits']:3d}  "
                    f"hit rate {warm['cache_hit_rate']:.2f}\n"
                    f"  rerun  {rerun_s:7.3f}s  generator images {rerun['generated']:3d}  already stored {rerun['already_stored']:3d}\n"
                    f"  cold/warm {cold_s / warm_s:6.1f}x"
                )
            cold_m = statistics.median(r[0] for r in rows)
            warm_m = statistics.median(r[1] for r in rows)
            rerun_m = statistics.median(r[2] for r in rows)
            print(f"median over {len(rows)}: cold {cold_m:.3f}s, warm {warm_m:.3f}s, rerun {rerun_m:.3f}s; cold/warm {cold_m / warm_m:.1f}x")
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
