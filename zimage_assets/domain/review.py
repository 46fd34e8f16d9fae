"""Review: what a reviewer's file says, and what a reviewer's decision does to an item.

- `parse_review_csv`: the rows of a review file (sku, view, decision, reviewer, note[, batch_id]),
  with an error naming the row, field and value of every bad one.
- `final_verdicts`: an item's outcome: its last image verdict (or its prompt BLOCK when no image
  was made), overridden by the latest reviewer decision on that attempt.
- `rows_to_make_current`: publishing (e.g. an old batch, after an approval) never rolls a SKU
  back: a SKU x view whose current image comes from a newer batch is left alone.

Pure functions over plain rows: no I/O, no Dagster, no resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

from zimage_assets.domain.spreadsheet import from_spreadsheet_cell
from zimage_assets.domain.verdicts import BLOCK, PASS

# ---- review files ----

REVIEW_DECISIONS = ("approve", "reject", "regenerate")
REVIEW_COLUMNS = ("sku", "view", "decision", "reviewer", "note")


@dataclass(frozen=True)
class ReviewRow:
    row: int  # 1-based data row (header excluded)
    sku: str
    view: str
    decision: str
    reviewer: str
    note: str
    batch_id: str = ""  # optional: which batch's image (default: the item's latest batch)


def parse_review_csv(text: str) -> tuple[list[ReviewRow], list[str], int]:
    """Rows of a review file, an error per bad row/field naming its value, and how many rows
    were left undecided (no decision and no reviewer: e.g. the rest of review_queue's CSV).

    Columns: sku, view, decision (approve | reject | regenerate), reviewer, note, and optionally
    batch_id. Column names are case-insensitive; extra columns are ignored.
    """
    import csv
    import io

    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    header = {(name or "").strip().lower(): name for name in (reader.fieldnames or [])}
    missing = [c for c in ("sku", "view", "decision", "reviewer") if c not in header]
    if missing:
        return [], [f"header: missing column(s) {missing}; expected {list(REVIEW_COLUMNS)} (+ optional batch_id), found {list(header)}"], 0
    rows, errors, undecided = [], [], 0
    seen: dict[tuple[str, str, str], int] = {}
    for number, raw in enumerate(reader, start=1):
        def cell(name: str) -> str:  # undoes the formula guard of the CSVs we write
            return from_spreadsheet_cell((raw.get(header[name]) or "").strip()) if name in header else ""

        sku, view, decision, reviewer = cell("sku"), cell("view"), cell("decision").lower(), cell("reviewer")
        if not any((sku, view, decision, reviewer, cell("note"))):
            continue  # blank line
        if not decision and not reviewer:
            undecided += 1
            continue
        row_errors = []
        if not sku:
            row_errors.append(f"row {number}: field sku is empty")
        if not view:
            row_errors.append(f"row {number}: field view is empty")
        if decision not in REVIEW_DECISIONS:
            row_errors.append(f"row {number}: field decision={cell('decision')!r} is not one of {list(REVIEW_DECISIONS)}")
        if not reviewer:
            row_errors.append(f"row {number}: field reviewer is empty (every decision names who made it)")
        key = (cell("batch_id"), sku, view)
        if not row_errors and key in seen:
            row_errors.append(f"row {number}: {sku}/{view} already decided in row {seen[key]} of this file")
        if row_errors:
            errors += row_errors
            continue
        seen[key] = number
        rows.append(ReviewRow(number, sku, view, decision, reviewer, cell("note"), cell("batch_id")))
    return rows, errors, undecided


# ---- what a decision does ----


def final_verdicts(verdict_rows: Iterable[Mapping[str, Any]], decisions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (sku, view), sorted: the item's outcome after the gates and the reviewers.

    `verdict_rows` are a batch's verdicts (stage prompt or image, any order); `decisions` its
    review decisions, oldest first (for one attempt, the latest decision wins). The last image
    attempt's verdict stands; with no image, a prompt BLOCK stands (a prompt PASS or REVIEW with
    no image gives no row). A decision on that image attempt overrides the gate: approve -> PASS,
    reject or regenerate -> BLOCK. Each row keeps the verdict row's keys, with `verdict` the
    outcome, `gate_verdict` the gate's and `decision` the reviewer's (None when undecided).
    """
    latest: dict[tuple[str, str, int], str] = {}
    for d in decisions:
        latest[(d["sku"], d["view"], d["attempt"])] = d["decision"]
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sorted(verdict_rows, key=lambda r: (r["sku"], r["view"], r["attempt"])):  # the last image attempt wins
        key = (row["sku"], row["view"])
        if row["stage"] == "prompt" and (row["verdict"] != BLOCK or key in items):
            continue
        items[key] = {**row, "gate_verdict": row["verdict"], "decision": None}
    for (sku, view), item in items.items():
        decision = latest.get((sku, view, item["attempt"])) if item["stage"] == "image" else None
        if decision is not None:
            item["decision"] = decision
            item["verdict"] = PASS if decision == "approve" else BLOCK
    return [items[k] for k in sorted(items)]


def rows_to_make_current(candidates: Sequence[Mapping[str, Any]], current_from_newer_batch: Collection[tuple[str, str]]) -> list[dict[str, Any]]:
    """The candidate current-image rows to write: all but those whose (sku, view) already shows
    an image of a newer batch (re-publishing an old batch never rolls a SKU back)."""
    return [dict(r) for r in candidates if (r["sku"], r["view"]) not in current_from_newer_batch]
