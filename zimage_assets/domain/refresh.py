"""The monthly refresh: which SKUs are due, and what redoing them will cost, before any GPU work.

A SKU with a current image is due when, for any of its views, the image shows older content
(`content_changed`), came from another template version (`template_changed`), another model or
revision (`model_changed`), or is older than the configured age (`too_old`). The database query
(`StateDB.refresh_candidates`) flags each reason per SKU; this module counts, prices and
schedules them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from zimage_assets.domain.capacity import gpus_for, seconds_per_image, shown_seconds
from zimage_assets.domain.timestamps import iso_z

REASONS = ("content_changed", "template_changed", "model_changed", "too_old")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def parse_month(value: str) -> str:
    if not _MONTH.match(value or ""):
        raise ValueError(f"month {value!r} is not of the form YYYY-MM")
    return value


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in naive UTC."""
    year, mon = (int(p) for p in parse_month(month).split("-"))
    start = datetime(year, mon, 1)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1)
    return start, end


def refresh_batch_prefix(month: str) -> str:
    """Batch ids of a month's refresh: `refresh-2026-12-0001` (see domain/batching.batch_id_prefix)."""
    return f"refresh-{parse_month(month)}"


def reasons_of(row: Mapping[str, Any]) -> list[str]:
    return [r for r in REASONS if row.get(r)]


def count_reasons(due: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """SKUs per reason (a SKU can have several)."""
    return {r: sum(1 for row in due if row.get(r)) for r in REASONS}


@dataclass(frozen=True)
class Quote:
    month: str
    skus_due: int
    images: int
    reasons: dict[str, int]
    seconds_per_image: float
    seconds_source: str  # "measured over N images" or "configured (ZIMAGE_SECONDS_PER_IMAGE)"
    gpu_hours: float
    price_per_gpu_hour: float
    cost: float
    gpus: int
    arrival_images_per_hour: float  # new-SKU work the same GPUs must also do (domain/capacity.py)
    gpus_needed: int  # GPUs that finish this refresh and the arrivals by the month's end
    starts_at: datetime
    finishes_at: datetime
    month_end: datetime
    fits_in_month: bool
    share_of_month_gpu_time_pct: float
    budget: float  # 0 = no cap
    within_budget: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("starts_at", "finishes_at", "month_end"):
            out[key] = iso_z(out[key], "minutes")
        return out

    def summary(self) -> str:
        cap = f", budget {self.budget:,.2f}" if self.budget else ""
        return (
            f"{self.month}: {self.skus_due} SKUs due, {self.images} images, {self.gpu_hours:,.2f} GPU-hours at "
            f"{self.seconds_per_image:.3f} s/image ({self.seconds_source}), cost {self.cost:,.2f} at "
            f"{self.price_per_gpu_hour:,.2f} per GPU-hour{cap}; on {self.gpus} GPU(s) done by "
            f"{iso_z(self.finishes_at, 'minutes')} ({'within' if self.fits_in_month else 'AFTER'} the month); "
            f"{self.gpus_needed} GPU(s) needed for it beside {self.arrival_images_per_hour:,.1f} new images/h"
        )


def build_quote(
    *,
    month: str,
    due: Sequence[Mapping[str, Any]],
    views_for_category: Callable[[str], Sequence[str]],
    measured_seconds: float | None,
    measured_images: int,
    fallback_seconds: float,
    price_per_gpu_hour: float,
    gpus: int,
    now: datetime,
    budget: float = 0.0,
    arrival_images_per_hour: float = 0.0,
) -> Quote:
    """Images = each due SKU's views under the current templates (an upper bound: shared specs and
    cache hits make fewer). Seconds per image are measured from receipts when there are any (the
    same figure as the sla_report's capacity). `gpus_needed` counts the GPUs that make the refresh
    and the new-SKU arrivals of the rest of the month in the hours left."""
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    images = sum(len(views_for_category(row["category"])) for row in due)
    figure = seconds_per_image(measured_seconds, measured_images, fallback_seconds)
    seconds, source = figure.seconds, figure.source
    gpu_hours = images * seconds / 3600
    cost = gpu_hours * price_per_gpu_hour
    start, month_end = month_bounds(month)
    starts_at = max(now, start)
    finishes_at = starts_at + timedelta(hours=gpu_hours / gpus)
    hours_left = max((month_end - starts_at).total_seconds() / 3600, 0.0)
    share = 100.0 * gpu_hours / (gpus * hours_left) if hours_left else float("inf") if gpu_hours else 0.0
    needed = gpus_for(images + arrival_images_per_hour * hours_left, hours_left, seconds) if hours_left else 0
    return Quote(
        month=month,
        skus_due=len(due),
        images=images,
        reasons=count_reasons(due),
        seconds_per_image=shown_seconds(seconds),
        seconds_source=source,
        gpu_hours=round(gpu_hours, 3),
        price_per_gpu_hour=price_per_gpu_hour,
        cost=round(cost, 2),
        gpus=gpus,
        arrival_images_per_hour=round(arrival_images_per_hour, 3),
        gpus_needed=needed,
        starts_at=starts_at,
        finishes_at=finishes_at,
        month_end=month_end,
        fits_in_month=finishes_at <= month_end,
        share_of_month_gpu_time_pct=round(share, 2),
        budget=budget,
        within_budget=not budget or cost <= budget,
    )
