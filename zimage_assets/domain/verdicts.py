"""Verdicts: PASS / REVIEW / BLOCK with machine-readable reasons, and how they combine.

Every gate (prompt safety, image safety, image quality, marketplace compliance) reports
`Finding`s: a reason code and the verdict it calls for. An item's verdict is the worst of its
findings; its reasons are the codes of the findings that set it (plus the milder ones, so a
reviewer sees everything). Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

PASS, REVIEW, BLOCK = "PASS", "REVIEW", "BLOCK"
VERDICTS = (PASS, REVIEW, BLOCK)
_RANK = {PASS: 0, REVIEW: 1, BLOCK: 2}


def worst(*verdicts: str) -> str:
    """The most severe of the given verdicts (PASS when none)."""
    best = PASS
    for verdict in verdicts:
        if verdict not in _RANK:
            raise ValueError(f"unknown verdict {verdict!r}; expected one of {VERDICTS}")
        if _RANK[verdict] > _RANK[best]:
            best = verdict
    return best


def rank(verdict: str) -> int:
    return _RANK[verdict]


@dataclass(frozen=True)
class Finding:
    """One problem: a reason code (e.g. `blurry`, `nsfw_review`) and the verdict it calls for."""

    code: str
    verdict: str
    detail: str = ""
    regenerate: bool = False  # a new seed may fix it (quality, compliance); safety never


@dataclass
class Assessment:
    """The outcome of the gates for one prompt or image."""

    verdict: str = PASS
    findings: list[Finding] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    fixes: list[str] = field(default_factory=list)  # e.g. ["whitened_background", "padded"]

    @property
    def reasons(self) -> list[str]:
        """Reason codes, most severe first, each once."""
        ordered = sorted(self.findings, key=lambda f: -_RANK[f.verdict])
        return list(dict.fromkeys(f.code for f in ordered))

    @property
    def regenerable(self) -> bool:
        """True when every non-PASS finding may go away with another seed."""
        bad = [f for f in self.findings if f.verdict != PASS]
        return bool(bad) and all(f.regenerate for f in bad)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        self.verdict = worst(self.verdict, finding.verdict)

    def extend(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self.add(finding)

    def details(self) -> dict[str, str]:
        return {f.code: f.detail for f in self.findings if f.detail}

    def as_row(self) -> dict[str, Any]:
        """The `reasons` and `scores` of a verdicts-table row (fixes and details kept in scores)."""
        scores = dict(self.scores)
        if self.fixes:
            scores["fixes"] = list(self.fixes)
        details = self.details()
        if details:
            scores["details"] = details
        return {"verdict": self.verdict, "reasons": self.reasons, "scores": scores}


def combine(assessments: Sequence[Assessment]) -> Assessment:
    """One assessment out of several gates' (scores merged, findings and fixes concatenated)."""
    out = Assessment()
    for a in assessments:
        out.extend(a.findings)
        out.scores.update(a.scores)
        out.fixes.extend(a.fixes)
    return out


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per verdict and per reason over verdict rows ({verdict, reasons})."""
    counts = {v: 0 for v in VERDICTS}
    reasons: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        for code in row.get("reasons") or []:
            reasons[code] = reasons.get(code, 0) + 1
    total = sum(counts.values())
    return {
        "total": total,
        "counts": counts,
        "block_share": round(counts[BLOCK] / total, 4) if total else 0.0,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def batch_is_broken(rows: Sequence[Mapping[str, Any]], max_block_share: float, min_items: int = 1) -> bool:
    """A batch as a whole is broken when more than `max_block_share` of its items are BLOCK.

    One bad item never fails a batch: this is for the case where the model, the templates or
    the catalog are wrong for everything (e.g. a model that yields black images).
    """
    summary = summarise(rows)
    return summary["total"] >= min_items and summary["block_share"] > max_block_share
