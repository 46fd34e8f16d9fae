"""Cutting work into batches: the unit of a Dagster partition and of one GPU run.

A batch holds up to `max_items` SKU x view items. All views of one SKU stay in the same batch
so that a SKU is complete (or not) as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

BATCH_KINDS = ("new", "manual", "refresh", "request")  # request: asked for through the API or the RabbitMQ intake
# Dagster's run queue runs higher numbers first.
PRIORITY_TAG_VALUES = {"high": 10, "normal": 0, "low": -10}
DEFAULT_PRIORITY = {"new": "high", "manual": "normal", "refresh": "low", "request": "normal"}


@dataclass(frozen=True)
class BatchItem:
    sku: str
    view: str


def plan_batches(sku_views: Iterable[tuple[str, Sequence[str]]], max_items: int) -> list[list[BatchItem]]:
    """Greedy, order-preserving packing of each SKU's views into batches of <= max_items.

    A SKU with more views than max_items gets a batch of its own rather than being split.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    batches: list[list[BatchItem]] = []
    current: list[BatchItem] = []
    for sku, views in sku_views:
        items = [BatchItem(sku, v) for v in views]
        if current and len(current) + len(items) > max_items:
            batches.append(current)
            current = []
        current.extend(items)
    if current:
        batches.append(current)
    return batches


def batch_id_prefix(kind: str, now: datetime) -> str:
    """`new-20261124T1405`, `manual-20261124T1405`, `request-20261124T1405`, `refresh-2026-12` (a month's refresh)."""
    if kind not in BATCH_KINDS:
        raise ValueError(f"unknown batch kind {kind!r}; expected one of {BATCH_KINDS}")
    stamp = now.strftime("%Y-%m") if kind == "refresh" else now.strftime("%Y%m%dT%H%M")
    return f"{kind}-{stamp}"


def batch_id(prefix: str, sequence: int) -> str:
    return f"{prefix}-{sequence:04d}"


def priority_tag(priority: str) -> str:
    if priority not in PRIORITY_TAG_VALUES:
        raise ValueError(f"unknown priority {priority!r}; expected one of {sorted(PRIORITY_TAG_VALUES)}")
    return str(PRIORITY_TAG_VALUES[priority])
