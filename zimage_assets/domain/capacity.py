"""GPU capacity: how many GPUs hold the SLA at the observed arrival rate, from measured seconds per image.

One figure for seconds per image serves the `sla_report` and the monthly refresh quote: the mean
generation seconds of the model's latest receipts, or ZIMAGE_SECONDS_PER_IMAGE until there are
any (`seconds_per_image`). GPUs are counted by `gpus_for`: the GPUs that make a number of images
within a number of hours, each GPU making 3600 / seconds_per_image images an hour.

Arrivals are the batches that carry an SLA deadline (new and changed SKUs), each with its items
(SKU x view images) at the time it was minted. Two needs, the larger wins:

    rate   the last `window_hours` of arrivals, made within the same hours (the steady state);
    peak   the most images minted within any SLA-long stretch of the window (a catalog drop), made
           within the SLA. Optimistic: queueing and publication also take time inside the SLA.

Seconds per image come from the receipts, which time the pipeline calls only; the CPU work around
each image (gates, encoding, uploads) adds to a run's wall time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence


@dataclass(frozen=True)
class SecondsPerImage:
    seconds: float
    source: str  # "measured over N images" or "configured (ZIMAGE_SECONDS_PER_IMAGE)"


def seconds_per_image(measured: float | None, measured_images: int, fallback: float) -> SecondsPerImage:
    if measured:
        return SecondsPerImage(float(measured), f"measured over {measured_images} images")
    return SecondsPerImage(float(fallback), "configured (ZIMAGE_SECONDS_PER_IMAGE)")


def gpus_for(images: float, hours: float, seconds: float) -> int:
    """GPUs that make `images` within `hours` at `seconds` per image (0 for no images)."""
    if hours <= 0:
        raise ValueError(f"hours must be more than 0, got {hours}")
    if images <= 0:
        return 0
    return max(1, math.ceil(images * seconds / (hours * 3600) - 1e-9))


def arrivals(batches: Iterable[Mapping[str, Any]]) -> list[tuple[datetime, int]]:
    """(minted at, images) of the batches that carry a deadline."""
    return sorted((b["created_at"], int(b["item_count"])) for b in batches if b.get("deadline") is not None)


@dataclass(frozen=True)
class Capacity:
    window_hours: float
    images: int  # images that arrived in the window
    images_per_hour: float
    peak_images: int  # most images minted within one SLA-long stretch
    sla_hours: float
    seconds_per_image: float
    seconds_source: str
    gpus_for_rate: int
    gpus_for_peak: int
    gpus_needed: int
    gpus_available: int

    @property
    def enough(self) -> bool:
        return self.gpus_available >= self.gpus_needed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "enough": self.enough}

    def describe(self) -> str:
        return (
            f"{self.images} images arrived in {self.window_hours:g} h ({self.images_per_hour:,.1f}/h, peak {self.peak_images} within "
            f"{self.sla_hours:g} h); at {self.seconds_per_image:.3f} s/image ({self.seconds_source}) the SLA needs "
            f"{self.gpus_needed} GPU(s) ({self.gpus_for_rate} for the rate, {self.gpus_for_peak} for the peak); "
            f"the pool has {self.gpus_available}{'' if self.enough else ': NOT ENOUGH'}"
        )


def sla_capacity(
    arrived: Sequence[tuple[datetime, int]],
    *,
    now: datetime,
    sla_hours: float,
    seconds: SecondsPerImage,
    gpus_available: int,
    window_hours: float = 24.0,
) -> Capacity:
    start = now - timedelta(hours=window_hours)
    recent = sorted((at, n) for at, n in arrived if start <= at <= now)
    total = sum(n for _, n in recent)
    sla = timedelta(hours=sla_hours)
    peak = max((sum(n for at, n in recent if first <= at < first + sla) for first, _ in recent), default=0)
    for_rate = gpus_for(total, window_hours, seconds.seconds)
    for_peak = gpus_for(peak, sla_hours, seconds.seconds)
    return Capacity(
        window_hours=window_hours,
        images=total,
        images_per_hour=round(total / window_hours, 3),
        peak_images=peak,
        sla_hours=sla_hours,
        seconds_per_image=shown_seconds(seconds.seconds),
        seconds_source=seconds.source,
        gpus_for_rate=for_rate,
        gpus_for_peak=for_peak,
        gpus_needed=max(for_rate, for_peak),
        gpus_available=gpus_available,
    )


def shown_seconds(seconds: float) -> float:
    """Seconds per image as reports and quotes show them: 4 significant figures (0.02203 s, 12.35 s)."""
    return float(f"{seconds:.4g}")
