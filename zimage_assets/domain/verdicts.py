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
        if self.findings:
            scores["reason_verdicts"] = {code: verdict for code, verdict in self.reason_verdicts().items()}
        return {"verdict": self.verdict, "reasons": self.reasons, "scores": scores}

    def reason_verdicts(self) -> dict[str, str]:
        """Each reason code with the most severe verdict it called for."""
        out: dict[str, str] = {}
        for f in self.findings:
            out[f.code] = worst(out.get(f.code, PASS), f.verdict)
        return out


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


# Which gate each image reason code belongs to (for the per-gate asset checks).
SAFETY_CODES = frozenset({"nsfw", "nsfw_suspect"})
COMPLIANCE_CODES = frozenset(
    {"too_small_for_profile", "no_product_found", "background_not_white", "product_cut_off", "product_too_small", "not_square"}
)


# Product preservation: the product's pixels are the merchant's photo, or the image says it is illustrative.
PRESERVATION_CODES = frozenset({"product_altered", "product_off_centre", "illustrative", "photo_fallback", "photo_converted"})


def gate_of(code: str) -> str:
    """`safety`, `compliance`, `preservation`, `prompt` or `quality` for an image reason code."""
    if code in PRESERVATION_CODES:
        return "preservation"
    if code in SAFETY_CODES:
        return "safety"
    if code in COMPLIANCE_CODES:
        return "compliance"
    if code == "prompt_review":
        return "prompt"
    return "quality"


def gate_verdict(row: Mapping[str, Any], gate: str) -> str:
    """The verdict one gate gave a verdict row (PASS when none of its codes fired)."""
    by_code = (row.get("scores") or {}).get("reason_verdicts") or {code: row["verdict"] for code in row.get("reasons") or []}
    return worst(*[v for code, v in by_code.items() if gate_of(code) == gate])

