"""The image an attempt shows (`StateDB.shown_images`) and the one-query review queue, on SQLite."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

T0 = datetime(2026, 3, 1, 12, 0)


@pytest.fixture
def state_db(tmp_path):
    from resources.state_db import StateDB, dispose_engines

    db = StateDB(url=f"sqlite:///{tmp_path / 'state.sqlite'}")
    db.engine  # noqa: B018 - create the tables before any statement is counted
    yield db
    dispose_engines()


@contextmanager
def counted(db):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def _batch(db, batch_id, created_at):
    from resources.state_db import tables as t

    with db.engine.begin() as conn:
        conn.execute(t.batches.insert().values(
            batch_id=batch_id, kind="new", priority="normal", status="generated", created_at=created_at, deadline=None,
            selection="{}", template_version="v1", sku_count=1, item_count=1, updated_at=created_at))


def _image(db, batch_id, sku, view, attempt, verdict, *, receipt=True, fix=False, reasons=("blurry",)):
    key = f"images/{batch_id}-{sku}-{view}-{attempt}.png"
    db.save_verdicts([{"batch_id": batch_id, "sku": sku, "view": view, "stage": "image", "attempt": attempt, "verdict": verdict,
                       "reasons": list(reasons), "scores": {"sharpness": attempt}, "created_at": T0}])
    if receipt:
        db.save_receipts([{
            "batch_id": batch_id, "sku": sku, "view": view, "attempt": attempt, "spec_hash": f"spec-{sku}", "model_id": "tiny",
            "revision": "r1", "scheduler": "euler", "steps": 2, "guidance_scale": 0.0, "seed": 100 + attempt, "width": 64,
            "height": 48, "storage_key": key, "sha256": f"sha-{attempt}", "diffusers_version": "0.39", "torch_version": "2.13",
            "device": "cpu", "dtype": "float32", "seconds": 1.5, "cache_hit": False, "created_at": T0}])
    if fix:
        db.save_fixes([{"batch_id": batch_id, "sku": sku, "view": view, "attempt": attempt, "fixes": ["padded_to_square"],
                        "source_key": key, "storage_key": f"fixed/{batch_id}-{sku}-{view}-{attempt}.png", "sha256": f"fixed-sha-{attempt}",
                        "width": 64, "height": 64, "created_at": T0}])
    return key


def _decide(db, batch_id, sku, view, attempt, decision="approve"):
    db.save_review_decisions([{
        "decision_id": f"{batch_id}-{sku}-{view}-{attempt}-{decision}", "batch_id": batch_id, "sku": sku, "view": view,
        "attempt": attempt, "decision": decision, "reviewer": "ana", "note": "", "previous_verdict": "REVIEW",
        "previous_reasons": ["blurry"], "source": "test.csv#row1", "outcome": "published", "decided_at": T0}])


def test_shown_images_are_the_fixed_image_when_a_fix_was_recorded_else_the_receipts(state_db):
    _batch(state_db, "b1", T0)
    plain = _image(state_db, "b1", "A", "front", 0, "PASS")
    _image(state_db, "b1", "A", "front", 1, "PASS", fix=True)
    _image(state_db, "b1", "A", "back", 0, "PASS", receipt=False)  # no receipt: nothing to show
    _batch(state_db, "b2", T0)
    _image(state_db, "b2", "A", "front", 0, "PASS", fix=True)  # another batch's fix changes nothing in b1

    with counted(state_db) as statements:
        shown = state_db.shown_images("b1")
    assert len(statements) == 1
    assert list(shown) == [("A", "front", 0), ("A", "front", 1)]
    receipts = {(r["sku"], r["view"], r["attempt"]): r for r in state_db.receipts("b1", latest_only=False)}

    unfixed = shown[("A", "front", 0)]
    assert unfixed == {**receipts[("A", "front", 0)], "fixed": False, "fixes": []}
    assert unfixed["storage_key"] == plain

    fixed = shown[("A", "front", 1)]
    assert (fixed["fixed"], fixed["fixes"]) == (True, ["padded_to_square"])
    assert (fixed["storage_key"], fixed["sha256"], fixed["width"], fixed["height"]) == ("fixed/b1-A-front-1.png", "fixed-sha-1", 64, 64)
    assert {k: v for k, v in fixed.items() if k not in ("storage_key", "sha256", "width", "height", "fixed", "fixes")} == {
        k: v for k, v in receipts[("A", "front", 1)].items() if k not in ("storage_key", "sha256", "width", "height")}
    assert state_db.shown_images("no-such-batch") == {}


@pytest.fixture
def queued(state_db):
    """Two batches; the newer one made A/front again. Each comment says why an item is or is not queued."""
    _batch(state_db, "b-old", T0)
    _batch(state_db, "b-new", T0 + timedelta(hours=1))
    _image(state_db, "b-old", "A", "front", 0, "REVIEW")  # no: b-new made A/front later (PASS)
    _image(state_db, "b-new", "A", "front", 0, "PASS")
    _image(state_db, "b-old", "D", "front", 0, "REVIEW")  # yes, last (older batch)
    _image(state_db, "b-new", "B", "front", 0, "REVIEW")
    _image(state_db, "b-new", "B", "front", 1, "REVIEW", fix=True, reasons=("not_square", "blurry"))  # yes: attempt 1, fixed image
    _image(state_db, "b-new", "B", "back", 0, "REVIEW")
    _image(state_db, "b-new", "B", "back", 1, "BLOCK")  # no: the highest attempt is BLOCK
    _image(state_db, "b-new", "C", "front", 0, "REVIEW")
    _decide(state_db, "b-new", "C", "front", 0)  # no: decided
    _image(state_db, "b-new", "C", "back", 0, "REVIEW")
    _image(state_db, "b-new", "C", "back", 1, "REVIEW")
    _decide(state_db, "b-new", "C", "back", 0, "regenerate")  # yes: the decision was about attempt 0
    _image(state_db, "b-new", "E", "front", 0, "REVIEW", receipt=False)  # yes, with no image to show
    state_db.save_verdicts([{"batch_id": "b-new", "sku": "F", "view": "front", "stage": "prompt", "attempt": 0,
                             "verdict": "REVIEW", "reasons": ["prompt_review"], "scores": {}, "created_at": T0}])  # no: not an image
    return state_db


def test_the_review_queue_lists_the_undecided_review_images_of_each_items_latest_batch(queued):
    queue = queued.review_queue()
    assert [(q["batch_id"], q["sku"], q["view"], q["attempt"]) for q in queue] == [
        ("b-new", "B", "front", 1), ("b-new", "C", "back", 1), ("b-new", "E", "front", 0), ("b-old", "D", "front", 0)]
    first = queue[0]
    assert first == {"batch_id": "b-new", "sku": "B", "view": "front", "attempt": 1, "reasons": ["not_square", "blurry"],
                     "scores": {"sharpness": 1}, "storage_key": "fixed/b-new-B-front-1.png", "batch_created_at": T0 + timedelta(hours=1)}
    assert queue[1]["storage_key"] == "images/b-new-C-back-1.png"
    assert queue[2]["storage_key"] is None
    assert queue[3]["batch_created_at"] == T0


def test_the_review_queue_limit_keeps_the_first_rows(queued):
    everything = queued.review_queue()
    assert queued.review_queue(limit=2) == everything[:2]
    assert queued.review_queue(limit=0) == queued.review_queue(limit=None) == everything
    assert queued.review_queue(limit=100) == everything


def test_the_review_queue_is_one_query_however_many_items_wait(queued):
    with counted(queued) as statements:
        few = queued.review_queue()
    assert len(statements) == 1
    for n in range(20):
        _image(queued, "b-new", f"G{n:02d}", "front", 0, "REVIEW", fix=n % 2 == 0)
    with counted(queued) as statements:
        many = queued.review_queue()
    assert len(statements) == 1
    assert len(many) == len(few) + 20
