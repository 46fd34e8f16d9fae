"""The forms a prompt's text is searched in, so that spelling around a term does not hide it.

Built on maintained libraries rather than hand-written tables:

- Unicode's own confusables data (UTS #39, via `confusable-homoglyphs`, MIT): every letter that
  looks like a Latin letter or digit (Cyrillic `р`, Greek `ρ`/`υ`, ...) is mapped to it: the
  text's *skeleton*. Mathematical alphanumerics and full-width forms are folded by NFKC first.
- Transliteration (`anyascii`, ISC): other scripts written out in Latin letters (Cyrillic
  `порно` -> `porno`), for the letters the skeleton does not cover.
- Pinyin (`pypinyin`, MIT): each Chinese term list entry also matches its romanisation
  (`色情` -> `seqing`, `se qing`; tone marks are stripped with the other accents).
- Fuzzy matching (`rapidfuzz`, MIT, edit distance) for misspellings of listed words, checked
  against a dictionary (`pyspellchecker`, MIT; English, German, French, Spanish) so that real
  words that happen to be one letter away (exotic / erotic, bandage / bondage) are left alone.
- Base64-looking runs are decoded and searched too; masked letters (`p*rn`, `n#ked`) are
  expanded against the listed words.
- A minor's age written as a number or a word ("a 12-year-old", "14 yo", "aged 13", "12 ans",
  "12 años", "12-jährige") counts as a word about a child.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from functools import lru_cache
from typing import Iterable

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"([\u3400-\u9fff\uf900-\ufaff]+)")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{12,}={0,2}(?![A-Za-z0-9+/=])")
_MASK_CHARS = "*#?%"
_LETTERS = re.compile(r"[\W_]+")  # what is not a letter or digit
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
}
_AGE = "|".join([r"\d{1,2}", *_NUMBER_WORDS])
_AGE_PATTERNS = [
    re.compile(rf"\b({_AGE})[\s-]*(?:years?|yrs?|yr)[\s-]*old\b"),
    re.compile(rf"\b({_AGE})[\s-]*(?:yo|y\s*/\s*o|yrs?)\b"),
    re.compile(rf"\baged?\s*[:=]?\s*({_AGE})\b"),
    re.compile(rf"\b({_AGE})[\s-]*(?:ans|anos|anni|jahre|jahrige[rn]?)\b"),
]
ADULT_AGE = 18
FUZZY_MIN_LENGTH = 5


@lru_cache(maxsize=1)
def _confusable_table() -> dict[int, str]:
    """Non-ASCII character -> the ASCII letter or digit it looks like (Unicode confusables.txt)."""
    from confusable_homoglyphs import confusables

    table: dict[int, str] = {}
    for char, homoglyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in homoglyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[ord(char)] = target.lower()
                break
    return table


def skeleton(text: str) -> str:
    """NFKC, accents and zero-width / format characters removed, case folded, look-alikes mapped."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf", "Cc") or c in "\n\t")
    return unicodedata.normalize("NFKC", kept).casefold().translate(_confusable_table())


def transliterated(text: str) -> str | None:
    """The text with letters of other scripts written in Latin (Chinese left as it is), or None
    when that changes nothing."""
    if text.isascii():
        return None
    from anyascii import anyascii

    out = "".join(part if CJK.match(part) else anyascii(part) for part in _CJK_RUN.split(text)).casefold()
    return out if _LETTERS.sub("", out) != _LETTERS.sub("", text) else None


def pinyin_forms(term: str) -> list[tuple[str, ...]]:
    """A Chinese term's romanisations as token sequences: its syllables and them joined."""
    from pypinyin import lazy_pinyin

    syllables = [s for s in (skeleton(p) for p in lazy_pinyin(term)) if s.isalpha()]
    joined = "".join(syllables)
    if len(syllables) < 2 or len(joined) < FUZZY_MIN_LENGTH or CJK.search(joined):
        return []
    return [tuple(syllables), (joined,)]


def decoded_base64(text: str) -> list[str]:
    """Readable text hidden in base64 runs of `text` (nothing for IDs and hashes)."""
    out = []
    for match in _BASE64.finditer(text):
        chunk = match.group()
        if chunk.isalpha() and (chunk.islower() or chunk.isupper()):
            continue  # a plain word, not an encoding
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        letters = sum(c.isalpha() or c.isspace() for c in decoded)
        if decoded and letters / len(decoded) >= 0.8 and " " in decoded.strip():
            out.append(decoded)
    return out


def minor_ages(text: str) -> list[str]:
    """Ages under 18 written in the (skeleton) text, e.g. ["age 12"]."""
    found = []
    for pattern in _AGE_PATTERNS:
        for match in pattern.finditer(text):
            value = match.group(1)
            age = int(value) if value.isdigit() else _NUMBER_WORDS[value]
            if age < ADULT_AGE:
                found.append(f"age {age}")
    return sorted(set(found))


def unmasked(text: str, words: Iterable[str]) -> str | None:
    """`text` with each masked word (`p*rn`, `n#ked`) replaced by the listed word it can only be."""
    if not any(c in text for c in _MASK_CHARS):
        return None
    vocabulary = tuple(words)
    changed = False
    parts = text.split()
    for i, part in enumerate(parts):
        core = part.strip(".,;:!?\"'()[]")
        if not any(c in core for c in _MASK_CHARS) or not any(c.isalpha() for c in core):
            continue
        pattern = re.compile("".join("[a-z]{1,2}" if c in _MASK_CHARS else re.escape(c) for c in core) + r"\Z")
        hits = [w for w in vocabulary if pattern.match(w)]
        if hits:
            parts[i] = part.replace(core, min(hits, key=len))
            changed = True
    return " ".join(parts) if changed else None


class FuzzyWords:
    """Misspellings of listed words: a token one edit (two from nine letters) away from a listed
    word of at least five letters that is not itself a word of the dictionary."""

    def __init__(self, words: Iterable[str]):
        self.words = sorted({w for w in words if len(w) >= FUZZY_MIN_LENGTH and w.isalpha()})
        self._seen: dict[str, str | None] = {}  # catalogs repeat their words: each is looked up once

    def match(self, token: str) -> str | None:
        if len(token) < FUZZY_MIN_LENGTH or not token.isalpha() or not self.words:
            return None
        if token not in self._seen:
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[token] = self._match(token)
        return self._seen[token]

    def _match(self, token: str) -> str | None:
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        limit = 1 if len(token) < 9 else 2
        hit = process.extractOne(token, self.words, scorer=Levenshtein.distance, score_cutoff=limit)
        if hit is None or hit[0] == token or _known_word(token):
            return None
        return hit[0]


@lru_cache(maxsize=4096)
def _known_word(token: str) -> bool:
    return token in _dictionary()


@lru_cache(maxsize=1)
def _dictionary():
    from spellchecker import SpellChecker

    return SpellChecker(language=["en", "de", "fr", "es"], distance=1)
