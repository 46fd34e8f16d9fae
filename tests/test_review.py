"""The review queue and review decisions, through real Dagster runs and the tiny model (strict mode)."""

from __future__ import annotations

import csv
import io

import dagster as dg
import pytest

from conftest import Project, metadata_of

SKU = "MH01-XS-Gray"  # Men/Tops: front, back, detail, lifestyle in the small templates


@pytest.fixture
def reviewed(project_env, monkeypatch, instance):
    """One batch whose 4 noise images all landed in REVIEW (strict mode, one attempt each)."""
    from resources import build_resources
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_QUALITY_MODE", "strict")
    monkeypatch.setenv("ZIMAGE_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ZIMAGE_VIEW_PROFILES", "front=none,back=none,detail=none,lifestyle=none")
    project = Project(build_resources(Settings.from_env()), instance)
    project.ingest()
    (batch_id,) = project.mint(skus=[SKU])
    project.generate(batch_id)
    return project, batch_id


def _apply(project: Project, path, raise_on_error: bool = True):
    from zimage_assets.assets.review import review_decisions, review_queue

    return dg.materialize(
        [review_decisions, review_queue],
        resources=project.resources,
        instance=project.instance,
        run_config={"ops": {"review_decisions": {"config": {"path": str(path)}}}},
        raise_on_error=raise_on_error,
    )


def _write(path, rows, header=("sku", "view", "decision", "reviewer", "note")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_queue_lists_review_items_and_decisions_are_applied_with_an_audit_trail(reviewed, tmp_path):
    from zimage_assets.assets.review import QUEUE_CSV_KEY, review_queue
    from zimage_assets.domain.templates import item_seed

    project, batch_id = reviewed
    queue = metadata_of(dg.materialize([review_queue], resources=project.resources, instance=project.instance), "review_queue")
    assert queue["waiting"] == 4 and "data:image/jpeg;base64," in queue["thumbnails"]
    listed = list(csv.DictReader(io.StringIO(project.store.get(QUEUE_CSV_KEY).decode())))
    assert {(r["sku"], r["view"], r["batch_id"]) for r in listed} == {(SKU, v, batch_id) for v in ("front", "back", "detail", "lifestyle")}
    assert project.state_db.current_images([SKU]) == []

    # Reviewers fill in the queue's own CSV: three decisions, one row left undecided.
    decided = {"front": ("approve", "ana", "fine for a thumbnail"), "back": ("reject", "ana", "wrong colour"), "detail": ("regenerate", "bo", "")}
    for row in listed:
        if row["view"] in decided:
            row["decision"], row["reviewer"], row["note"] = decided[row["view"]]
    path = tmp_path / "decisions.csv"
    _write(path, [[r[c] for c in listed[0]] for r in listed], header=list(listed[0]))
    result = _apply(project, path)

    applied = metadata_of(result, "review_decisions")
    assert (applied["applied"], applied["already_applied"], applied["left_undecided"]) == (3, 0, 1)
    assert applied["decisions"] == {"approve": 1, "reject": 1, "regenerate": 1}
    assert metadata_of(result, "review_queue")["waiting"] == 1  # refreshed in the same run

    current = {r["view"]: r for r in project.state_db.current_images([SKU])}
    assert set(current) == {"front"}  # approved -> published
    manifest = list(csv.DictReader(io.StringIO(project.store.get(f"manifests/{batch_id}/manifest.csv").decode())))
    assert [(r["sku"], r["view"]) for r in manifest] == [(SKU, "front")]
    final = {f["view"]: f for f in project.state_db.final_verdicts(batch_id)}
    assert (final["front"]["verdict"], final["back"]["verdict"], final["detail"]["verdict"]) == ("PASS", "BLOCK", "BLOCK")
    assert final["lifestyle"]["verdict"] == "REVIEW"

    trail = project.state_db.review_decisions(sku=SKU)
    assert {(d["view"], d["decision"], d["reviewer"], d["previous_verdict"]) for d in trail} == {
        ("front", "approve", "ana", "REVIEW"), ("back", "reject", "ana", "REVIEW"), ("detail", "regenerate", "bo", "REVIEW")}
    assert all(d["source"].startswith(str(path)) and d["previous_reasons"] for d in trail)
    runless = project.instance.fetch_materializations(dg.AssetKey("published_images"), limit=10).records
    assert any(r.partition_key == batch_id and "review" in (r.asset_materialization.description or "") for r in runless)

    # regenerate: a one-item batch, made again with the next seeds (attempt numbers continue).
    new_batch = applied["regeneration_batch"]
    assert [(i["sku"], i["view"]) for i in project.state_db.batch_items(new_batch)] == [(SKU, "detail")]
    project.generate(new_batch)
    (receipt,) = project.state_db.receipts(new_batch, latest_only=False)
    content_hash = project.state_db.batch_items(new_batch)[0]["content_hash"]
    assert receipt["attempt"] == 1 and receipt["seed"] == item_seed(content_hash, "detail", 1)

    # The same file again changes nothing.
    counts = project.state_db.table_counts()
    again = metadata_of(_apply(project, path), "review_decisions")
    assert (again["applied"], again["already_applied"], again["regeneration_batch"]) == (0, 3, "-")
    assert project.state_db.table_counts() == counts


def test_a_bad_review_file_names_every_problem_and_applies_nothing(reviewed, tmp_path):
    project, batch_id = reviewed
    project.state_db.save_verdicts([  # make "back" a BLOCK (e.g. the NSFW gate) to try approving it
        {**v, "verdict": "BLOCK", "reasons": ["nsfw"], "scores": {"reason_verdicts": {"nsfw": "BLOCK"}}}
        for v in project.state_db.verdicts(batch_id, stage="image") if v["view"] == "back"
    ])
    path = _write(tmp_path / "bad.csv", [
        [SKU, "front", "approve", "ana", "ok"],
        ["NO-SUCH-SKU", "front", "approve", "ana", ""],
        [SKU, "detail", "maybe", "ana", ""],
        [SKU, "lifestyle", "approve", "", ""],
        [SKU, "back", "approve", "ana", "looks fine"],
    ])
    result = _apply(project, path, raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "4 problem(s), nothing applied" in message
    assert "row 2 (sku='NO-SUCH-SKU', view='front'): no image of this SKU x view was ever made" in message
    assert "row 3: field decision='maybe'" in message
    assert "row 4: field reviewer is empty" in message
    assert "row 5 (sku='MH01-XS-Gray', view='back'): decision='approve' needs an item in REVIEW" in message
    assert project.state_db.review_decisions() == []
    assert project.state_db.current_images([SKU]) == []

    missing = _write(tmp_path / "no_header.csv", [[SKU, "front"]], header=("sku", "view"))
    result = _apply(project, missing, raise_on_error=False)
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "missing column(s) ['decision', 'reviewer']" in message


def test_the_review_job_is_defined(project_env):
    from zimage_assets.definitions import defs

    job = defs.resolve_job_def("apply_review_decisions")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {"review_decisions", "review_queue"}
