"""Minting batches: chosen SKUs -> views from the templates -> immutable batches in the database.

Shared by the mint_batches job, the CLI and the sensors. Each batch is written in its own
transaction; SKUs of a batch that was not written stay unbatched and are picked up next time.
Adding the Dagster partitions and launching runs is the caller's business (a sensor, usually).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from resources.state_db import StateDB
from zimage_assets.domain.batching import DEFAULT_PRIORITY, plan_batches, priority_tag
from zimage_assets.domain.templates import TemplateSet


def mint_batches(
    state_db: StateDB,
    templates: TemplateSet,
    sku_categories: Iterable[tuple[str, str]],
    *,
    kind: str,
    max_items: int,
    selection: Mapping[str, Any] | Callable[[list[str]], Mapping[str, Any]],
    priority: str | None = None,
    now: datetime | None = None,
    deadline: datetime | Callable[[list[str]], datetime | None] | None = None,
) -> list[str]:
    """Plan batches of <= max_items items and write each; returns the new batch ids.

    `selection` and `deadline` may be functions of the batch's SKUs, for callers that describe
    (or time) each batch by what is in it.
    """
    plan = plan_batches(((sku, templates.views_for_category(category)) for sku, category in sku_categories), max_items)
    priority = priority or DEFAULT_PRIORITY[kind]
    priority_tag(priority)  # validates the name before anything is written
    minted = []
    for items in plan:
        skus = list(dict.fromkeys(i.sku for i in items))
        minted.append(
            state_db.mint_batch(
                kind=kind,
                priority=priority,
                items=items,
                template_version=templates.version,
                selection=selection(skus) if callable(selection) else selection,
                now=now,
                deadline=deadline(skus) if callable(deadline) else deadline,
            )
        )
    return minted


def run_tags(batch: Mapping[str, Any]) -> dict[str, str]:
    """Tags of a batch's run: its place in Dagster's run queue and its SLA deadline."""
    tags = {
        "dagster/priority": priority_tag(batch["priority"]),
        "zimage/batch": batch["batch_id"],
        "zimage/kind": batch["kind"],
        "zimage/priority": batch["priority"],
    }
    if batch.get("deadline"):
        tags["zimage/deadline"] = batch["deadline"].isoformat(timespec="seconds") + "Z"
    return tags
