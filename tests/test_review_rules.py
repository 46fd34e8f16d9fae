"""The review rules as pure functions (zimage_assets/domain/review.py): no database, no Dagster."""

from __future__ import annotations

from zimage_assets.domain.review import final_verdicts, parse_review_csv, rows_to_make_current


def _verdict(sku, view, stage, attempt, verdict, reasons=("r",)):
    return {"batch_id": "b1", "sku": sku, "view": view, "stage": stage, "attempt": attempt, "verdict": verdict,
            "reasons": list(reasons), "scores": {}}


def _decision(sku, view, attempt, decision):
    return {"sku": sku, "view": view, "attempt": attempt, "decision": decision}


def _outcomes(rows):
    return {(r["sku"], r["view"]): (r["stage"], r["attempt"], r["verdict"], r["gate_verdict"], r["decision"]) for r in rows}


def test_the_last_image_attempt_wins_in_any_input_order():
    rows = [_verdict("A", "front", "image", 2, "PASS"), _verdict("A", "front", "image", 0, "BLOCK"), _verdict("A", "front", "image", 1, "REVIEW")]
    (final,) = final_verdicts(rows, [])
    assert (final["attempt"], final["verdict"], final["gate_verdict"], final["decision"]) == (2, "PASS", "PASS", None)


def test_a_prompt_block_stands_only_when_no_image_was_made():
    rows = [
        _verdict("A", "front", "prompt", 0, "BLOCK", ["unsafe"]),  # no image: the prompt BLOCK is the outcome
        _verdict("B", "front", "prompt", 0, "BLOCK"),
        _verdict("B", "front", "image", 0, "PASS"),  # an image was made: its verdict wins
        _verdict("C", "front", "prompt", 0, "REVIEW"),  # a prompt REVIEW without an image gives no row
        _verdict("D", "front", "image", 0, "REVIEW"),
        _verdict("D", "front", "prompt", 1, "BLOCK"),  # a later prompt BLOCK does not hide the image
    ]
    assert _outcomes(final_verdicts(rows, [])) == {
        ("A", "front"): ("prompt", 0, "BLOCK", "BLOCK", None),
        ("B", "front"): ("image", 0, "PASS", "PASS", None),
        ("D", "front"): ("image", 0, "REVIEW", "REVIEW", None),
    }


def test_the_reviewers_decision_overrides_the_gate():
    rows = [_verdict(sku, "front", "image", 0, "REVIEW") for sku in ("A", "B", "C", "D")]
    decisions = [_decision("A", "front", 0, "approve"), _decision("B", "front", 0, "reject"), _decision("C", "front", 0, "regenerate")]
    assert _outcomes(final_verdicts(rows, decisions)) == {
        ("A", "front"): ("image", 0, "PASS", "REVIEW", "approve"),
        ("B", "front"): ("image", 0, "BLOCK", "REVIEW", "reject"),
        ("C", "front"): ("image", 0, "BLOCK", "REVIEW", "regenerate"),
        ("D", "front"): ("image", 0, "REVIEW", "REVIEW", None),
    }


def test_only_the_latest_decision_on_the_shown_attempt_counts():
    rows = [_verdict("A", "front", "image", 0, "REVIEW"), _verdict("A", "front", "image", 1, "REVIEW"),
            _verdict("B", "front", "image", 0, "REVIEW"), _verdict("C", "front", "prompt", 0, "BLOCK")]
    decisions = [
        _decision("A", "front", 0, "approve"),  # about an earlier attempt: not the one shown
        _decision("B", "front", 0, "approve"),
        _decision("B", "front", 0, "reject"),  # oldest first: the latest wins
        _decision("C", "front", 0, "approve"),  # no image: a decision has nothing to override
    ]
    assert _outcomes(final_verdicts(rows, decisions)) == {
        ("A", "front"): ("image", 1, "REVIEW", "REVIEW", None),
        ("B", "front"): ("image", 0, "BLOCK", "REVIEW", "reject"),
        ("C", "front"): ("prompt", 0, "BLOCK", "BLOCK", None),
    }


def test_final_verdicts_are_sorted_and_keep_the_verdict_rows_fields():
    rows = [_verdict("B", "back", "image", 0, "PASS", ["x"]), _verdict("A", "front", "image", 0, "PASS"), _verdict("A", "back", "image", 0, "PASS")]
    finals = final_verdicts(rows, [])
    assert [(f["sku"], f["view"]) for f in finals] == [("A", "back"), ("A", "front"), ("B", "back")]
    assert finals[2]["reasons"] == ["x"] and finals[2]["batch_id"] == "b1"
    assert rows[0]["verdict"] == "PASS" and "gate_verdict" not in rows[0]  # inputs are not modified


def test_publishing_never_rolls_a_sku_back():
    candidates = [{"sku": "A", "view": "front", "batch_id": "old"}, {"sku": "A", "view": "back", "batch_id": "old"},
                  {"sku": "B", "view": "front", "batch_id": "old"}]
    fresh = rows_to_make_current(candidates, {("A", "front"), ("Z", "front")})
    assert fresh == [{"sku": "A", "view": "back", "batch_id": "old"}, {"sku": "B", "view": "front", "batch_id": "old"}]
    assert rows_to_make_current(candidates, set()) == candidates
    assert rows_to_make_current(candidates, {("A", "front"), ("A", "back"), ("B", "front")}) == []


def test_a_review_file_is_parsed_with_every_problem_named():
    text = "\ufeffSKU,View,Decision,Reviewer,Note,batch_id\n" \
           "A,front,Approve,ana,ok,\n" \
           "A,back,,,,\n" \
           "B,front,maybe,ana,,\n" \
           "A,front,reject,bo,,\n" \
           "\n" \
           "C,front,regenerate,bo,again,b7\n"
    rows, errors, undecided = parse_review_csv(text)
    assert [(r.row, r.sku, r.view, r.decision, r.reviewer, r.note, r.batch_id) for r in rows] == [
        (1, "A", "front", "approve", "ana", "ok", ""), (5, "C", "front", "regenerate", "bo", "again", "b7")]
    assert undecided == 1
    assert errors == ["row 3: field decision='maybe' is not one of ['approve', 'reject', 'regenerate']",
                      "row 4: A/front already decided in row 1 of this file"]
    assert "missing column(s) ['reviewer']" in parse_review_csv("sku,view,decision\nA,front,approve\n")[1][0]
