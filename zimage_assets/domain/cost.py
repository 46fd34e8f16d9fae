"""Cost accounting: GPU seconds from the receipts, a price per GPU-hour, cost per batch and per 1000 images.

Pure functions over receipt rows (dicts with `spec_hash`, `cache_hit`, `seconds`, `attempt`).
Items that share a spec were one image, made once: their receipts count once. Cache hits cost
nothing. "Per 1000 images" divides by the images the batch delivers (one per item), so a batch
served mostly from the cache is cheap per image, as it really is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

# Upper bounds (seconds per image) of the inference latency histogram: from a small image on an
# H100 (~0.1 s) to a 1536 px Base image on a small GPU (minutes).
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class BatchCost:
    images: int  # images the batch delivers (one per SKU x view item with a receipt)
    generated: int  # distinct images the GPU made for them
    gpu_seconds: float
    gpu_hour_price_usd: float
    cost_usd: float
    cost_per_1000_images_usd: float


def generated_images(receipts: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], float]:
    """(spec hash, attempt) -> seconds, for every image the GPU made (cache hits excluded)."""
    made: dict[tuple[str, int], float] = {}
    for receipt in receipts:
        if receipt["cache_hit"]:
            continue
        key = (receipt["spec_hash"], int(receipt.get("attempt") or 0))
        made.setdefault(key, float(receipt["seconds"] or 0.0))
    return made


def cost_of(gpu_seconds: float, gpu_hour_price_usd: float) -> float:
    if gpu_seconds < 0 or gpu_hour_price_usd < 0:
        raise ValueError(f"negative GPU seconds ({gpu_seconds}) or price ({gpu_hour_price_usd})")
    return gpu_seconds / 3600.0 * gpu_hour_price_usd


def per_1000(cost_usd: float, images: int) -> float:
    return cost_usd / images * 1000.0 if images else 0.0


def batch_cost(receipts: Sequence[Mapping[str, Any]], gpu_hour_price_usd: float) -> BatchCost:
    """What the images of a batch cost, from all its receipts (every attempt included)."""
    made = generated_images(receipts)
    gpu_seconds = sum(made.values())
    cost = cost_of(gpu_seconds, gpu_hour_price_usd)
    images = len({(r["sku"], r["view"]) for r in receipts})
    return BatchCost(
        images=images,
        generated=len(made),
        gpu_seconds=round(gpu_seconds, 4),
        gpu_hour_price_usd=gpu_hour_price_usd,
        cost_usd=cost,
        cost_per_1000_images_usd=per_1000(cost, images),
    )


def latency_counts(seconds: Iterable[float], buckets: Sequence[float] = LATENCY_BUCKETS) -> list[int]:
    """Per-bucket (not cumulative) counts: index i counts values <= buckets[i] and > buckets[i-1];
    the last index counts values above every bound. Summing these lists over runs and making
    them cumulative gives a Prometheus histogram."""
    counts = [0] * (len(buckets) + 1)
    for value in seconds:
        for i, bound in enumerate(buckets):
            if value <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    return counts


def cumulative(counts: Sequence[int | float]) -> list[float]:
    out, total = [], 0.0
    for count in counts:
        total += count
        out.append(total)
    return out


def generation_run(
    receipts: Sequence[Mapping[str, Any]],
    *,
    run_latencies: Sequence[float],
    gpu_hour_price_usd: float,
    generation_seconds: float,
    generated: int,
    cache_hits: int,
    cache_stats: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One product_images run in numbers: (its `generation_runs` row fields, its cost metadata).

    The row is None when the run did nothing (everything was already stored and nothing was looked
    up): re-running a finished batch then changes no table. `run_latencies` are the seconds of the
    images this run made; the batch's cost comes from all its receipts.
    """
    cost = batch_cost(receipts, gpu_hour_price_usd)
    run_cost = cost_of(generation_seconds, gpu_hour_price_usd)
    lookups = int(cache_stats.get("hits", 0) + cache_stats.get("misses", 0))
    errors = int(cache_stats.get("errors", 0))
    metadata = {
        "gpu_seconds": cost.gpu_seconds,
        "gpu_hour_price_usd": gpu_hour_price_usd,
        "cost_usd": cost.cost_usd,
        "cost_per_1000_images_usd": cost.cost_per_1000_images_usd,
        "run_gpu_seconds": round(generation_seconds, 4),
        "run_cost_usd": run_cost,
        "cache_lookups": lookups,
        "cache_errors": errors,
    }
    if not (generated or lookups or errors):
        return None, metadata
    row = {
        "generated": generated,
        # A hit is an image served from the cache (its entry found and the image still stored).
        "cache_hits": cache_hits,
        "cache_misses": max(0, lookups - cache_hits),
        "cache_errors": errors,
        "gpu_seconds": round(generation_seconds, 4),
        "gpu_hour_price_usd": gpu_hour_price_usd,
        "cost_usd": run_cost,
        "batch_cost_per_1000_images_usd": cost.cost_per_1000_images_usd,
        "latency_counts": latency_counts(run_latencies),
        "latency_sum": round(sum(run_latencies), 4),
    }
    return row, metadata
