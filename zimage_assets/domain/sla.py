"""The SLA promise (a new or changed SKU gets a published image within N hours), as plain functions.

A SKU's clock starts when its current content was first seen (`last_changed`; for a new SKU that
is `first_seen`) and stops when an image of that content is published. The check looks at the
SKUs waiting now; the report looks back at batches that carried a deadline.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from zimage_assets.domain.timestamps import iso_z


def sla_delta(sla_hours: float) -> timedelta:
    return timedelta(hours=sla_hours)


def batch_deadline(due_since: Iterable[datetime], sla_hours: float) -> datetime:
    """A batch is due when its most urgent SKU is: the earliest clock start plus the SLA."""
    starts = list(due_since)
    if not starts:
        raise ValueError("a deadline needs at least one SKU")
    return min(starts) + sla_delta(sla_hours)


def hours_between(earlier: datetime | None, later: datetime) -> float:
    return round((later - earlier).total_seconds() / 3600, 2) if earlier else 0.0


@dataclass(frozen=True)
class SlaStatus:
    sla_hours: float
    pending: int  # SKUs without an image of their current content
    overdue: int  # ... of which waiting longer than the SLA
    overdue_new: int
    overdue_changed: int
    oldest_pending_hours: float
    oldest_overdue_hours: float
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.overdue == 0

    def describe(self) -> str:
        if self.passed:
            within = f"{self.pending} SKU(s) waiting, oldest {self.oldest_pending_hours} h" if self.pending else "no SKU waiting"
            return f"every SKU is within the {self.sla_hours:g} h SLA ({within})"
        names = ", ".join(s["sku"] for s in self.sample)
        return (
            f"{self.overdue} SKU(s) older than the {self.sla_hours:g} h SLA without a published image of their current "
            f"content ({self.overdue_new} new, {self.overdue_changed} changed); oldest {self.oldest_overdue_hours} h; "
            f"e.g. {names}"
        )


def sla_status(backlog: Mapping[str, Any], now: datetime, sla_hours: float) -> SlaStatus:
    """Summarise `StateDB.sla_backlog(now - SLA)` for a check or a report."""
    sample = [
        {**s, "age_hours": hours_between(s["due_since"], now), "due_since": iso_z(s["due_since"])}
        for s in backlog["sample"]
    ]
    return SlaStatus(
        sla_hours=sla_hours,
        pending=backlog["pending"],
        overdue=backlog["overdue"],
        overdue_new=backlog["overdue_new"],
        overdue_changed=backlog["overdue_changed"],
        oldest_pending_hours=hours_between(backlog["oldest_due_since"], now),
        oldest_overdue_hours=hours_between(backlog["oldest_overdue_since"], now),
        sample=sample,
    )


def batch_outcome(batch: Mapping[str, Any], now: datetime) -> str:
    """met | late | missed (failed, or open past its deadline) | open (before its deadline).

    A batch counts as published when it was first published (`published_at`, see
    `StateDB.batches_with_deadlines`), even if it was re-run or is open again since.
    """
    deadline = batch["deadline"]
    published_at = batch.get("published_at") or (batch["updated_at"] if batch["status"] == "published" else None)
    if published_at is not None:
        return "met" if published_at <= deadline else "late"
    if batch["status"] == "failed" or now > deadline:
        return "missed"
    return "open"


def attainment_by_day(batches: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """SKU-weighted SLA attainment per UTC day of the deadline, oldest day first.

    attainment = SKUs met / SKUs decided (met + late + missed); open batches are not decided yet.
    """
    days: dict[str, dict[str, Any]] = defaultdict(lambda: {"batches": 0, "skus": 0, "met": 0, "late": 0, "missed": 0, "open": 0})
    for batch in batches:
        row = days[batch["deadline"].strftime("%Y-%m-%d")]
        row["batches"] += 1
        row["skus"] += batch["sku_count"]
        row[batch_outcome(batch, now)] += batch["sku_count"]
    out = []
    for day in sorted(days):
        row = days[day]
        decided = row["met"] + row["late"] + row["missed"]
        out.append({"day": day, **row, "attainment_pct": round(100.0 * row["met"] / decided, 1) if decided else None})
    return out


def overall_attainment(rows: Sequence[Mapping[str, Any]]) -> float | None:
    met = sum(r["met"] for r in rows)
    decided = sum(r["met"] + r["late"] + r["missed"] for r in rows)
    return round(100.0 * met / decided, 1) if decided else None
