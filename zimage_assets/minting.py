"""Minting batches: chosen SKUs -> views from the templates -> immutable batches in the database.

Every way a batch comes to be is here, each a short function over the same `mint_batches`:
- `mint_selection`: SKUs a person chose (the mint_batches job, the CLI);
- `mint_new_and_changed`: SKU versions with no image and no batch (the new-SKU sensor);
- `mint_refresh`: SKUs the monthly refresh found due (the refresh job);
- `mint_regenerations`: items a reviewer sent back (the review decisions asset);
- `mint_requests`: requests recorded by the API or the RabbitMQ intake (the request sensor).

Each batch is written in its own transaction; SKUs of a batch that was not written stay
unbatched and are picked up next time. Adding the Dagster partitions and launching runs is the
caller's business (a sensor, usually): `run_tags` are the tags a batch's run carries.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from resources.prompt_templates import PromptTemplates
from resources.request_policy import RequestPolicy
from resources.state_db import StateDB, utcnow
from zimage_assets.domain.batching import DEFAULT_PRIORITY, BatchItem, plan_batches, priority_tag
from zimage_assets.domain.placement import celery_run_priority
from zimage_assets.domain.refresh import REASONS
from zimage_assets.domain.requests import GenerationRequest, RequestError, quality_steps, regeneration_items, request_items
from zimage_assets.domain.sla import batch_deadline
from zimage_assets.domain.templates import TemplateError, TemplateSet
from zimage_assets.domain.timestamps import iso_z

Selection = Mapping[str, Any] | Callable[[list[str]], Mapping[str, Any]]


def mint_batches(
    state_db: StateDB,
    templates: TemplateSet,
    sku_categories: Iterable[tuple[str, str]],
    *,
    kind: str,
    max_items: int,
    selection: Selection,
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


def _mint(state_db: StateDB, prompt_templates: PromptTemplates, sku_categories, *, max_items: int = 0, **options) -> list[str]:
    """`mint_batches` with the configured templates (a broken file fails once, naming it) and batch size."""
    return mint_batches(
        state_db, prompt_templates.load_or_fail(), sku_categories, max_items=max_items or prompt_templates.max_items_per_batch, **options
    )


def mint_selection(
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    chosen: Sequence[tuple[str, str]],
    *,
    kind: str,
    priority: str,
    selection: Mapping[str, Any],
    max_items: int = 0,
) -> list[str]:
    """Batches of SKUs a person chose (`chosen`: SKU, category), at the priority they chose."""
    return _mint(state_db, prompt_templates, chosen, kind=kind, priority=priority, max_items=max_items, selection=selection)


def mint_new_and_changed(
    state_db: StateDB, prompt_templates: PromptTemplates, sla_hours: float, *, limit: int = 5000, log=None
) -> tuple[list[str], bool]:
    """Mint `new` batches for SKU versions that have no image and no batch; (batch ids, drained).

    Priority high, deadline = the earliest SKU change of the batch + the SLA. Only the database is
    written; launching is a separate step, so that a crash in between is repaired by the next launch.
    """
    rows = state_db.skus_needing_images(limit)
    if not rows:
        return [], True
    by_sku = {r["sku"]: r for r in rows}

    def describe(skus: list[str]) -> dict:
        changed = sum(1 for s in skus if by_sku[s]["has_image"])
        return {"by": "new_sku_sensor", "new_skus": len(skus) - changed, "changed_skus": changed}

    minted = _mint(
        state_db,
        prompt_templates,
        ((r["sku"], r["category"]) for r in rows),
        kind="new",
        priority="high",
        selection=describe,
        deadline=lambda skus: batch_deadline((by_sku[s]["last_changed"] for s in skus), sla_hours),
    )
    if log is not None:
        changed = sum(1 for r in rows if r["has_image"])
        log.info(
            f"minted {len(minted)} batch(es) for {len(rows)} SKU(s) ({len(rows) - changed} new, {changed} changed), "
            f"oldest change {iso_z(rows[0]['last_changed'])}"
        )
    return minted, len(rows) < limit


def mint_refresh(state_db: StateDB, prompt_templates: PromptTemplates, due: Sequence[Mapping[str, Any]], *, month: str, run_id: str) -> list[str]:
    """Refresh batches (kind refresh, priority low) of the SKUs a quote found due, counted by reason."""
    reasons = {r["sku"]: r["reasons"] for r in due}
    return _mint(
        state_db,
        prompt_templates,
        ((r["sku"], r["category"]) for r in due),
        kind="refresh",
        priority="low",
        selection=lambda skus: {
            "by": "monthly_refresh",
            "month": month,
            "reasons": {reason: sum(1 for s in skus if reason in reasons[s]) for reason in REASONS},
            "run_id": run_id,
        },
    )


def mint_regenerations(state_db: StateDB, prompt_templates: PromptTemplates, items: Sequence[tuple[str, str]], *, source: str) -> str:
    """One manual batch that makes these (SKU, view) items again, as reviewers asked; its id.

    A request's image (no catalog SKU) is made again from its own prompt, seed and size."""
    return state_db.mint_batch(
        kind="manual",
        priority="normal",
        items=[BatchItem(sku, view) for sku, view in items],
        template_version=prompt_templates.load_or_fail().version,
        selection={"review_regenerate": [f"{sku}/{view}" for sku, view in items], "file": source},
        carried=state_db.carried_items(items),
    )


def mint_requests(
    state_db: StateDB,
    prompt_templates: PromptTemplates,
    policy: RequestPolicy,
    *,
    model_steps: Callable[[], int],
    limit: int = 2000,
    log=None,
) -> list[str]:
    """`request` batches of recorded requests, most urgent first; the new batch ids.

    Requests of one priority share batches of up to ZIMAGE_MAX_ITEMS_PER_BATCH items (a request's
    images stay together): generation requests' items carry their own prompt, seed, size and
    steps; regeneration requests' items are their SKUs' template views (two requests for the same
    SKU x view go to different batches). Deadline: the earliest request + its priority's hours.
    `model_steps`: the served model's steps (asked once, and only when a quality needs them).
    """
    tasks = state_db.waiting_tasks(limit)
    minted: list[str | None] = []
    now = utcnow()
    model_steps = functools.cache(model_steps)
    generate = [t for t in tasks if t["kind"] == "generate"]
    for priority in ("high", "normal", "low"):
        of_priority = {t["task_id"]: t for t in generate if t["priority"] == priority}
        plan = plan_batches(((tid, [str(i) for i in range(t["num_images"])]) for tid, t in of_priority.items()), policy.max_items_per_batch)
        for group in plan:
            chosen = [of_priority[tid] for tid in dict.fromkeys(i.sku for i in group)]
            items = []
            for task in chosen:
                request = GenerationRequest(**json.loads(task["request"]))
                steps = quality_steps(request.quality, model_steps()) if request.quality != "standard" else None
                items += request_items(task["task_id"], request, steps)
            minted.append(_mint_request_group(state_db, chosen, items, policy, "request", now))
    regenerate = [t for t in tasks if t["kind"] == "regenerate"]
    try:
        templates = prompt_templates.load() if regenerate else None
    except TemplateError as exc:  # regenerations wait for a usable file; generation requests need none
        if log is not None:
            log.error(f"{len(regenerate)} regeneration request(s) wait: {exc}")
        regenerate = []
    for priority in ("high", "normal", "low"):
        chosen, items = [], []
        for task in (t for t in regenerate if t["priority"] == priority):
            request = json.loads(task["request"])
            products = state_db.products(request["skus"])
            try:
                wanted = regeneration_items(products, templates, request["skus"], request["views"])
            except RequestError as exc:  # the catalog or the templates changed since the request was accepted
                state_db.finish_task(task["task_id"], status="failed", reason=[exc.message], finished_at=now)
                continue
            taken = {(i["sku"], i["view"]) for i in items}
            if chosen and (len(items) + len(wanted) > policy.max_items_per_batch or taken & set(wanted)):
                minted.append(_mint_request_group(state_db, chosen, items, policy, templates.version, now))
                chosen, items = [], []
            chosen.append(task)
            items += [{"sku": sku, "view": view, "content_hash": products[sku]["content_hash"]} for sku, view in wanted]
        if chosen:
            minted.append(_mint_request_group(state_db, chosen, items, policy, templates.version, now))
    done = [m for m in minted if m]
    if log is not None and done:
        log.info(f"minted {len(done)} request batch(es) for {len(tasks)} request(s): {', '.join(done[:10])}")
    return done


def _mint_request_group(state_db: StateDB, tasks: list[dict], items: list[dict], policy: RequestPolicy, template_version: str, now) -> str | None:
    earliest = min(t["requested_at"] for t in tasks)
    return state_db.mint_request_batch(
        task_ids=[t["task_id"] for t in tasks],
        items=items,
        priority=tasks[0]["priority"],
        deadline=policy.deadline(tasks[0]["priority"], earliest),
        template_version=template_version,
        selection={"by": "request_intake", "tasks": [t["task_id"] for t in tasks], "sources": sorted({t["source"] for t in tasks})},
        now=now,
    )


def run_tags(batch: Mapping[str, Any]) -> dict[str, str]:
    """Tags of a batch's run: its place in Dagster's run queue and its SLA deadline."""
    tags = {
        "dagster/priority": priority_tag(batch["priority"]),
        "dagster-celery/run_priority": celery_run_priority(batch["priority"]),  # the same order among Celery's queued steps
        "zimage/batch": batch["batch_id"],
        "zimage/kind": batch["kind"],
        "zimage/priority": batch["priority"],
    }
    if batch.get("deadline"):
        tags["zimage/deadline"] = iso_z(batch["deadline"])
    return tags
