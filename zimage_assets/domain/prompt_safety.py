"""Prompt safety: catch unsafe prompts before any GPU work.

Catalog text is untrusted: a name or description can smuggle words into a prompt, and people
who want to get past a filter spell around it. So text is normalised before matching: Unicode
NFKC (full-width forms, ligatures, circled letters, mathematical letters), accents and
zero-width characters removed, case folded, look-alike letters of other scripts mapped to the
Latin ones by Unicode's confusables data, leetspeak decoded (`p0rn`, `s3x`, `$ex`), single
letters joined (`n.s.f.w`, `p o r n`), separators inside a word removed (`p-o-r-n`), repeated
letters folded (`pooorn`); and it is also searched transliterated (other scripts in Latin
letters), with masked letters filled in (`p*rn`), misspellings of listed words corrected
(`nakid`), base64 runs decoded, Chinese terms in pinyin (`seqing`), and a minor's age written
out ("a 12-year-old") counted as a word about a child: see prompt_text.py. Chinese terms match
with separators between their characters removed (`色 情`, `色.情`).

The term lists are data files (zimage_assets/safety_terms/*.txt, format in its README.txt;
English, Chinese, German, French, Spanish, Italian); users add their own with
ZIMAGE_SAFETY_TERMS_DIR. Pure functions, no Dagster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from zimage_assets.domain.prompt_text import FuzzyWords, decoded_base64, minor_ages, pinyin_forms, skeleton, transliterated, unmasked
from zimage_assets.domain.verdicts import BLOCK, PASS, REVIEW, Assessment, Finding

BUILTIN_TERMS_DIR = Path(__file__).resolve().parents[1] / "safety_terms"
DEFAULT_MAX_CHARS = 1000
CONTEXT, ALLOW = "CONTEXT", "ALLOW"
_DIRECTIVE = re.compile(r"^!\s*verdict\s*:\s*(\w+)\s*$", re.IGNORECASE)

# What a match of a category means when its file has no "!verdict:" line.
DEFAULT_CATEGORY_VERDICTS = {
    "sexual": BLOCK,
    "violence": BLOCK,
    "extremism": BLOCK,
    "suggestive": REVIEW,
    "drugs": REVIEW,
    "injection": REVIEW,
    "minors": CONTEXT,
    "intimate": CONTEXT,
    "babycare": CONTEXT,
    "allow": ALLOW,
}

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "€": "e"}
)
_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_REPEATS = re.compile(r"(.)\1+")


class TermListError(ValueError):
    """A term list file is unusable; the message names the file and line."""


@dataclass(frozen=True, eq=False)  # hashed by identity: cached per loaded list
class TermList:
    """Terms per category, compiled for matching."""

    verdicts: Mapping[str, str]  # category -> BLOCK | REVIEW | CONTEXT | ALLOW
    words: Mapping[str, tuple[tuple[str, ...], ...]]  # category -> token sequences
    stems: Mapping[str, tuple[str, ...]]  # category -> substrings of one word
    cjk: Mapping[str, tuple[str, ...]]  # category -> CJK substrings
    sources: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.words.values()) + sum(len(v) for v in self.stems.values()) + sum(len(v) for v in self.cjk.values())


@dataclass
class _Index:
    single: dict[str, set[str]] = field(default_factory=dict)  # token -> categories
    multi: dict[str, list[tuple[tuple[str, ...], str]]] = field(default_factory=dict)  # first token -> (seq, category)
    stems: list[tuple[str, str]] = field(default_factory=list)
    cjk: list[tuple[str, str]] = field(default_factory=list)
    allow_words: list[tuple[str, ...]] = field(default_factory=list)
    allow_cjk: list[str] = field(default_factory=list)
    allow_first: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # allow_words by first token
    vocabulary: tuple[str, ...] = ()  # single listed words and stems: what a masked word may be
    fuzzy: FuzzyWords | None = None  # misspellings of the listed words that decide


def load_terms(extra_dirs: Sequence[str | Path] = ()) -> TermList:
    """The built-in lists plus every *.txt in `extra_dirs` (missing folders are an error)."""
    return _load_terms(tuple(str(Path(d).expanduser().resolve()) for d in extra_dirs if str(d)))


@lru_cache(maxsize=8)
def _load_terms(extra_dirs: tuple[str, ...]) -> TermList:
    files = sorted(BUILTIN_TERMS_DIR.glob("*.txt"))
    for folder in extra_dirs:
        path = Path(folder)
        if not path.is_dir():
            raise TermListError(f"safety terms folder {folder} does not exist (ZIMAGE_SAFETY_TERMS_DIR)")
        files += sorted(path.glob("*.txt"))
    verdicts: dict[str, str] = {}
    words: dict[str, set[tuple[str, ...]]] = {}
    stems: dict[str, set[str]] = {}
    cjk: dict[str, set[str]] = {}
    for path in files:
        if path.name.lower() == "readme.txt":
            continue
        category = path.name.split(".", 1)[0].lower()
        verdict = DEFAULT_CATEGORY_VERDICTS.get(category, BLOCK)
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            directive = _DIRECTIVE.match(line)
            if directive:
                verdict = directive.group(1).upper()
                if verdict not in (BLOCK, REVIEW, CONTEXT, ALLOW):
                    raise TermListError(f"{path}:{number}: verdict {directive.group(1)!r} is not BLOCK, REVIEW, CONTEXT or ALLOW")
                continue
            if line.startswith("~"):
                stem = "".join(_tokens(normalise(line[1:]).translate(_LEET)))
                if len(stem) < 3:
                    raise TermListError(f"{path}:{number}: stem {line!r} is shorter than 3 letters (it would match everywhere)")
                stems.setdefault(category, set()).add(stem)
            elif _CJK.search(line):
                cjk.setdefault(category, set()).add(_cjk_text(normalise(line)))
                if verdict != ALLOW:  # 色情 also as its romanisation: seqing, se qing
                    words.setdefault(category, set()).update(pinyin_forms(line))
            else:
                seq = tuple(_tokens(normalise(line)))
                if not seq:
                    raise TermListError(f"{path}:{number}: {line!r} has no letters or digits")
                words.setdefault(category, set()).add(seq)
        previous = verdicts.get(category)
        if previous is not None and previous != verdict:
            raise TermListError(f"{path}: category {category!r} is {verdict} here but {previous} in another file")
        verdicts[category] = verdict
    return TermList(
        verdicts=verdicts,
        words={k: tuple(sorted(v)) for k, v in words.items()},
        stems={k: tuple(sorted(v)) for k, v in stems.items()},
        cjk={k: tuple(sorted(v)) for k, v in cjk.items()},
        sources=tuple(str(f) for f in files),
    )


@lru_cache(maxsize=8)
def _index(terms: TermList) -> _Index:
    index = _Index()
    for category, seqs in terms.words.items():
        for seq in seqs:
            if terms.verdicts[category] == ALLOW:
                index.allow_words.append(seq)
                folded = tuple(_REPEATS.sub(r"\1", token) for token in seq)  # as in the folded variant
                if folded != seq:
                    index.allow_words.append(folded)
            elif len(seq) == 1:
                index.single.setdefault(seq[0], set()).add(category)
            else:
                index.multi.setdefault(seq[0], []).append((seq, category))
    for category, values in terms.stems.items():
        index.stems += [(s, category) for s in values]
    for category, values in terms.cjk.items():
        if terms.verdicts[category] == ALLOW:
            index.allow_cjk += list(values)
        else:
            index.cjk += [(s, category) for s in values]
    index.allow_words.sort(key=len, reverse=True)
    index.allow_cjk.sort(key=len, reverse=True)
    for seq in index.allow_words:
        index.allow_first.setdefault(seq[0], []).append(seq)
    deciding = [c for c, v in terms.verdicts.items() if v in (BLOCK, REVIEW)]
    singles = {seq[0] for c in deciding for seq in terms.words.get(c, ()) if len(seq) == 1}
    index.vocabulary = tuple(sorted(singles | {stem for c in deciding for stem in terms.stems.get(c, ())}))
    index.fuzzy = FuzzyWords(singles)
    return index


# ---- normalisation ----


def normalise(text: str) -> str:
    """NFKC, accents and zero-width / format characters removed, case folded, look-alike letters
    mapped to the Latin ones (Unicode's confusables: prompt_text.skeleton)."""
    return skeleton(text)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def _cjk_text(text: str) -> str:
    """Letters, digits and CJK characters with every separator removed."""
    return "".join(_WORD.findall(text))


def _join_single_letters(tokens: list[str]) -> list[str]:
    """`n s f w` -> `nsfw`: runs of three or more one-letter tokens become one token."""
    out: list[str] = []
    run: list[str] = []
    for token in tokens + [""]:
        if len(token) == 1 and not _CJK.match(token):
            run.append(token)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out


def _token_variants(text: str) -> list[list[str]]:
    """The token sequences a term is looked for in (plain, leetspeak decoded, joined, folded)."""
    plain = normalise(text)
    leet = plain.translate(_LEET)
    variants = []
    for base in (plain, leet):
        tokens = _tokens(base)
        variants.append(tokens)
        joined = _join_single_letters(tokens)
        if joined != tokens:
            variants.append(joined)
        # Separators inside a whitespace-delimited chunk ("p-o-r-n", "s.e.x") removed.
        chunks = ["".join(_tokens(chunk)) for chunk in base.split()]
        chunks = [c for c in chunks if c]
        if chunks != tokens:
            variants.append(chunks)
    folded = [_REPEATS.sub(r"\1", t) for t in _tokens(leet)]
    variants.append([t if len(t) >= 3 else "" for t in folded])
    return variants


def _mask(tokens: list[str], allow: dict[str, list[tuple[str, ...]]]) -> list[str]:
    """Tokens of ALLOW phrases blanked (`allow`: first token -> phrases, longest first)."""
    if not allow or not any(t in allow for t in tokens):
        return tokens
    out = list(tokens)
    for i, token in enumerate(tokens):
        for seq in allow.get(token, ()):
            n = len(seq)
            if tuple(tokens[i : i + n]) == seq:
                out[i : i + n] = [""] * n
    return out


def _plural_forms(token: str) -> tuple[str, ...]:
    forms = [token]
    if token.endswith("es") and len(token) > 4:
        forms.append(token[:-2])
    if token.endswith("s") and len(token) > 3:
        forms.append(token[:-1])
    return tuple(forms)


def find_terms(text: str, terms: TermList) -> dict[str, list[str]]:
    """Category -> matched terms (as written in the lists, normalised) found in `text`: as
    written, transliterated, with masked letters filled in, misspellings corrected, base64 runs
    decoded (prompt_text.py); a minor's age written out counts as a word about a child."""
    index = _index(terms)
    found: dict[str, set[str]] = {}
    plain = normalise(text)
    forms = [text, transliterated(plain), unmasked(plain, index.vocabulary)]
    for decoded in decoded_base64(text):
        forms += [decoded, transliterated(normalise(decoded))]
    for form in [f for f in forms if f]:
        _scan(form, index, found)
    corrected = _corrected(plain, index)
    if corrected:
        _scan(corrected, index, found)
    for form in [plain] + [normalise(f) for f in forms[1:] if f]:
        for age in minor_ages(form):
            found.setdefault("minors", set()).add(age)
    if "babycare" in found:  # a baby bottle's nipple is not a sexual word
        for category in list(found):
            found[category] -= BABY_CARE_WORDS
            if not found[category]:
                del found[category]
    return {k: sorted(v) for k, v in sorted(found.items())}


#: Words that are product words, not sexual ones, where baby-care words are present.
BABY_CARE_WORDS = frozenset({"nipple", "nipples"})


def _corrected(plain: str, index: _Index) -> str | None:
    """The text with misspelled listed words corrected, or None when none is misspelled."""
    if index.fuzzy is None:
        return None
    tokens = _tokens(plain)
    fixed = [index.fuzzy.match(t) or t for t in tokens]
    return " ".join(fixed) if fixed != tokens else None


def _scan(text: str, index: _Index, found: dict[str, set[str]]) -> None:
    for tokens in _token_variants(text):
        tokens = _mask(tokens, index.allow_first)
        for i, token in enumerate(tokens):
            if not token:
                continue
            for form in _plural_forms(token):
                for category in index.single.get(form, ()):
                    found.setdefault(category, set()).add(form)
            for seq, category in index.multi.get(token, ()):
                n = len(seq)
                window = tokens[i : i + n]
                if len(window) == n and tuple(window[:-1]) == seq[:-1] and seq[-1] in _plural_forms(window[-1]):
                    found.setdefault(category, set()).add(" ".join(seq))
            for stem, category in index.stems:
                if stem in token:
                    found.setdefault(category, set()).add("~" + stem)
    if index.cjk and _CJK.search(text):
        compact = _cjk_text(normalise(text))
        for phrase in index.allow_cjk:
            compact = compact.replace(phrase, " ")
        for phrase, category in index.cjk:
            if phrase in compact:
                found.setdefault(category, set()).add(phrase)


# ---- verdicts ----


def _findings(found: Mapping[str, list[str]], terms: TermList, *, prefix: str, cap: str | None = None) -> list[Finding]:
    out = []
    for category, matched in found.items():
        verdict = terms.verdicts.get(category, BLOCK)
        if verdict in (CONTEXT, ALLOW):
            continue
        if cap == REVIEW:
            verdict = REVIEW
        code = f"{prefix}{category}"
        out.append(Finding(code=code, verdict=verdict, detail=", ".join(matched[:5])))
    if "minors" in found:
        sexual = [c for c in ("sexual", "suggestive") if c in found]
        if sexual:
            out.append(Finding(code=f"{prefix}sexualised_minor", verdict=REVIEW if cap == REVIEW else BLOCK,
                               detail=", ".join(found["minors"][:3] + found[sexual[0]][:3])))
        elif "intimate" in found:
            out.append(Finding(code=f"{prefix}minor_intimate_apparel", verdict=REVIEW,
                               detail=", ".join(found["minors"][:3] + found["intimate"][:3])))
    return out


def assess_prompt(
    prompt: str,
    terms: TermList,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    source_text: Iterable[str] = (),
) -> Assessment:
    """PASS / REVIEW / BLOCK for one prompt.

    `source_text`: the catalog fields the prompt was made from (name, description, attributes).
    Unsafe words there that did not reach the prompt (e.g. past the description's first
    sentence) make the item REVIEW (`catalog_text_<category>`): the catalog needs a person.
    """
    assessment = Assessment(scores={"chars": len(prompt)})
    if not prompt.strip():
        assessment.add(Finding("empty_prompt", BLOCK))
        return assessment
    if len(prompt) > max_chars:
        assessment.add(Finding("prompt_too_long", BLOCK, f"{len(prompt)} > {max_chars} characters"))
    found = find_terms(prompt, terms)
    assessment.extend(_findings(found, terms, prefix="unsafe_"))
    matched = [f"{c}:{t}" for c, ts in found.items() for t in ts]
    source = " \n ".join(s for s in source_text if s)
    if source:
        extra = {c: ts for c, ts in find_terms(source, terms).items() if c not in found}
        assessment.extend(_findings(extra, terms, prefix="catalog_text_", cap=REVIEW))
        matched += [f"catalog:{c}:{t}" for c, ts in extra.items() for t in ts if terms.verdicts.get(c) not in (CONTEXT, ALLOW)]
    if matched:
        assessment.scores["matched"] = matched[:20]
    return assessment


def prompt_verdict(prompt: str, terms: TermList, **kwargs) -> str:
    return assess_prompt(prompt, terms, **kwargs).verdict


__all__ = [
    "BLOCK",
    "PASS",
    "REVIEW",
    "TermList",
    "TermListError",
    "assess_prompt",
    "find_terms",
    "load_terms",
    "normalise",
    "prompt_verdict",
]
