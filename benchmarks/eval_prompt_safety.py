"""Prompt safety, measured: unsafe prompts blocked vs. real catalog prompts flagged.

    .venv/bin/python benchmarks/eval_prompt_safety.py [--catalogs DIR] [--unsafe FILE] [--eval FILE] [--templates YAML]

Unsafe side: every line of tests/fixtures/prompts/unsafe_prompts.txt (English and Chinese, with
evasions: leetspeak, separators, full-width forms, zero-width characters, look-alike letters);
target at least 95% BLOCK. Safe side: every prompt the project renders (default templates, every
view of every SKU) from every catalog under ../shared/catalogs, with the catalog fields as source
text, as product_prompts does; target at most 1% flagged (REVIEW or BLOCK). Prints the figures,
the misses, the flagged prompts and the time per prompt.

Second set: tests/fixtures/prompts/prompt_safety_eval.tsv, written without looking at the first
(unsafe prompts of every evasion class, and real products whose words look dangerous): BLOCK
rate and REVIEW-or-BLOCK rate of its unsafe prompts, false flags among its safe ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zimage_assets.domain.catalog import parse_catalog, read_catalog_table  # noqa: E402
from zimage_assets.domain.prompt_safety import assess_prompt, load_terms  # noqa: E402
from zimage_assets.domain.templates import load_templates, render_prompt  # noqa: E402
from zimage_assets.domain.verdicts import BLOCK, PASS  # noqa: E402
from zimage_assets.settings import DEFAULT_TEMPLATES  # noqa: E402


def read_unsafe(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def catalog_prompts(folder: Path, templates_path: Path) -> list[tuple[str, str, str, list[str]]]:
    templates = load_templates(templates_path)
    out = []
    for path in sorted(folder.rglob("*.csv")):
        parsed = parse_catalog(read_catalog_table(path))
        for product in parsed.skus.to_dict("records"):
            source = [str(product.get(k) or "") for k in ("title", "product_name", "description", "attributes")]
            for view in templates.views_for_category(product["category"]):
                out.append((path.name, product["sku"], render_prompt(templates, view, product), source))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", type=Path, default=REPO.parent / "shared" / "catalogs")
    parser.add_argument("--unsafe", type=Path, default=REPO / "tests" / "fixtures" / "prompts" / "unsafe_prompts.txt")
    parser.add_argument("--eval", type=Path, default=REPO / "tests" / "fixtures" / "prompts" / "prompt_safety_eval.tsv")
    parser.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES)
    args = parser.parse_args()

    terms = load_terms()
    print(f"term lists: {terms.size} terms in {len(terms.sources)} files")

    unsafe = read_unsafe(args.unsafe)
    started = time.perf_counter()
    results = [(p, assess_prompt(p, terms)) for p in unsafe]
    unsafe_seconds = time.perf_counter() - started
    blocked = [p for p, a in results if a.verdict == BLOCK]
    print(f"\nunsafe prompts: {len(blocked)}/{len(unsafe)} blocked = {len(blocked) / len(unsafe):.1%} (target >= 95%)")
    flagged_only = [(p, a) for p, a in results if a.verdict != BLOCK]
    for p, a in flagged_only:
        print(f"  not blocked ({a.verdict}): {p!r} {a.reasons}")

    rows = [line.split("\t") for line in args.eval.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    started = time.perf_counter()
    second = [(expected, kind, p, assess_prompt(p, terms)) for expected, kind, p in rows]
    second_seconds = time.perf_counter() - started
    bad = [r for r in second if r[0] == "unsafe"]
    good = [r for r in second if r[0] == "safe"]
    caught = [r for r in bad if r[3].verdict == BLOCK]
    flagged_bad = [r for r in bad if r[3].verdict != PASS]
    false_flags = [r for r in good if r[3].verdict != PASS]
    print(f"\nsecond set ({args.eval.name}): unsafe {len(caught)}/{len(bad)} blocked = {len(caught) / max(1, len(bad)):.1%}, "
          f"{len(flagged_bad)}/{len(bad)} REVIEW or BLOCK; safe {len(false_flags)}/{len(good)} flagged = {len(false_flags) / max(1, len(good)):.1%}")
    for _, kind, p, a in bad:
        if a.verdict != BLOCK:
            print(f"  not blocked ({a.verdict}) [{kind}]: {p!r} {a.reasons}")
    for _, kind, p, a in false_flags:
        print(f"  flagged ({a.verdict}) [{kind}]: {p!r} {a.reasons}")

    prompts = catalog_prompts(args.catalogs, args.templates)
    started = time.perf_counter()
    verdicts = [(name, sku, prompt, assess_prompt(prompt, terms, source_text=source)) for name, sku, prompt, source in prompts]
    safe_seconds = time.perf_counter() - started
    flagged = [v for v in verdicts if v[3].verdict != PASS]
    per_file = Counter(name for name, *_ in prompts)
    print(f"\ncatalog prompts: {len(prompts)} from {dict(per_file)}")
    print(f"flagged (REVIEW or BLOCK): {len(flagged)} = {len(flagged) / max(1, len(prompts)):.2%} (target <= 1%)")
    for name, sku, prompt, a in flagged[:20]:
        print(f"  {a.verdict} {name} {sku}: {a.reasons} {a.scores.get('matched')} :: {prompt[:120]}")
    longest = max((len(p) for _, _, p, _ in prompts), default=0)
    print(f"longest catalog prompt: {longest} characters")
    total = len(unsafe) + len(prompts) + len(rows)
    print(f"\ncost: {1000 * (unsafe_seconds + safe_seconds + second_seconds) / total:.3f} ms per prompt ({total} prompts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
