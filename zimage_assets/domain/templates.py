"""Prompt templates: views per category, their sizes, and prompt rendering.

Pure functions over a validated `TemplateSet`; the YAML shape is documented in
`zimage_assets/templates/default.yaml`.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from zimage_assets.domain.view_modes import DEFAULT_PHOTO_ROLES, ViewMode, parse_photo_roles, parse_view_mode

PLACEHOLDERS = frozenset({"subject", "product_name", "color", "material", "category", "details"})
SIZE_MULTIPLE = 16
MAX_SIDE = 2048
DESCRIPTION_CHARS = 160
# Attributes already spoken for by {subject}, or that do not change a picture.
_NOT_DETAILS = frozenset({"color", "material", "size"})


class TemplateError(ValueError):
    """The template file is unusable; the message names the file, view or category."""


@dataclass(frozen=True)
class ViewTemplate:
    name: str
    width: int
    height: int
    prompt: str
    photo: ViewMode = ViewMode()  # mode (photo | scene | text), photo roles, placement: domain/view_modes.py


@dataclass(frozen=True)
class TemplateSet:
    version: str
    negative_prompt: str
    views: Mapping[str, ViewTemplate]
    category_views: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (prefix segments, views)
    default_views: tuple[str, ...]
    source: str
    photo_roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_PHOTO_ROLES))  # file-name conventions

    def views_for_category(self, category: str) -> tuple[str, ...]:
        segments = _segments(category)
        best: tuple[str, ...] | None = None
        best_len = -1
        for prefix, views in self.category_views:
            if len(prefix) > best_len and tuple(segments[: len(prefix)]) == prefix:
                best, best_len = views, len(prefix)
        return best if best is not None else self.default_views


def load_templates(path: str | Path) -> TemplateSet:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"template file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"template file {path} is not valid YAML: {exc}") from None
    return parse_templates(raw, source=str(path))


def parse_templates(raw: Any, source: str = "<memory>") -> TemplateSet:
    if not isinstance(raw, dict):
        raise TemplateError(f"{source}: expected a mapping with version, views and categories")
    for key in ("version", "views", "categories"):
        if key not in raw:
            raise TemplateError(f"{source}: missing top-level key {key!r}")

    views: dict[str, ViewTemplate] = {}
    if not isinstance(raw["views"], dict) or not raw["views"]:
        raise TemplateError(f"{source}: 'views' must map view names to width/height/prompt")
    for name, body in raw["views"].items():
        views[str(name)] = _parse_view(str(name), body, source)

    categories = raw["categories"]
    if not isinstance(categories, dict) or "*" not in categories:
        raise TemplateError(f"{source}: 'categories' must be a mapping with a '*' fallback entry")
    category_views = []
    default_views: tuple[str, ...] = ()
    for prefix, names in categories.items():
        if not isinstance(names, list) or not names:
            raise TemplateError(f"{source}: category {prefix!r} must list at least one view")
        unknown = [n for n in names if n not in views]
        if unknown:
            raise TemplateError(f"{source}: category {prefix!r} uses undefined view(s) {unknown}")
        if prefix == "*":
            default_views = tuple(names)
        else:
            category_views.append((tuple(_segments(str(prefix))), tuple(names)))
    return TemplateSet(
        version=str(raw["version"]),
        negative_prompt=" ".join(str(raw.get("negative_prompt") or "").split()),
        views=views,
        category_views=tuple(category_views),
        default_views=default_views,
        source=source,
        photo_roles=parse_photo_roles(raw.get("photo_roles"), source, TemplateError),
    )


def _parse_view(name: str, body: Any, source: str) -> ViewTemplate:
    if not isinstance(body, dict):
        raise TemplateError(f"{source}: view {name!r} must have width, height and prompt")
    try:
        width, height = int(body["width"]), int(body["height"])
        prompt = " ".join(str(body["prompt"]).split())
    except (KeyError, TypeError, ValueError) as exc:
        raise TemplateError(f"{source}: view {name!r} needs integer width/height and a prompt ({exc})") from None
    for label, value in (("width", width), ("height", height)):
        if value % SIZE_MULTIPLE or not SIZE_MULTIPLE <= value <= MAX_SIDE:
            raise TemplateError(
                f"{source}: view {name!r} has {label} {value}; Z-Image needs a multiple of "
                f"{SIZE_MULTIPLE} between {SIZE_MULTIPLE} and {MAX_SIDE}"
            )
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(prompt) if field is not None}
    except ValueError as exc:
        raise TemplateError(f"{source}: view {name!r} prompt is not a valid template: {exc}") from None
    unknown = used - PLACEHOLDERS
    if unknown:
        raise TemplateError(
            f"{source}: view {name!r} uses unknown placeholder(s) {sorted(unknown)}; "
            f"known: {sorted(PLACEHOLDERS)}"
        )
    return ViewTemplate(name=name, width=width, height=height, prompt=prompt, photo=parse_view_mode(name, body, source, TemplateError))


def _segments(category: str) -> list[str]:
    return [s.strip().lower() for s in category.split("/") if s.strip()]


def render_prompt(templates: TemplateSet, view: str, product: Mapping[str, Any]) -> str:
    """Fill one view's template from a normalised SKU row (see zimage_assets.domain.catalog.SKU_COLUMNS).

    Catalog text only ever fills placeholders; it is never parsed as a template itself.
    """
    attributes = product.get("attributes") or {}
    if isinstance(attributes, str):
        attributes = json.loads(attributes) if attributes else {}
    color = _clean(attributes.get("color", ""))
    material = _clean(attributes.get("material", ""))
    name = _clean(product.get("product_name") or product.get("title") or "")
    subject = " ".join(p for p in (color.lower(), material.lower(), name) if p)
    values = {
        "subject": subject,
        "product_name": name,
        "color": color,
        "material": material,
        "category": _clean(str(product.get("category") or "").split("/")[-1]) or "the product",
        "details": _details(attributes, str(product.get("description") or "")),
    }
    prompt = templates.views[view].prompt.format_map(values)
    return " ".join(prompt.split())


def _details(attributes: Mapping[str, Any], description: str) -> str:
    parts = [f"{k.replace('_', ' ')}: {_clean(v)}" for k, v in sorted(attributes.items()) if k not in _NOT_DETAILS and _clean(v)]
    sentence = first_sentence(description, DESCRIPTION_CHARS)
    text = "; ".join(parts)
    if text:
        text = f"Details: {text}."
    return f"{text} {sentence}".strip()


def first_sentence(text: str, limit: int) -> str:
    text = _clean(text)
    match = re.search(r"(?<=[.!?])\s", text)
    sentence = text[: match.start()] if match else text
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "."
    return sentence


def _clean(value: Any) -> str:
    # Braces are harmless to str.format here (values are not re-parsed) but noise in a prompt.
    return " ".join(str(value).replace("{", "").replace("}", "").split())


def item_seed(content_hash: str, view: str, attempt: int = 0) -> int:
    """Deterministic seed per (product look, view, attempt).

    Keyed by the content hash, not the SKU: variants that only differ in size look the same, get
    the same spec and are generated once.
    """
    digest = hashlib.sha256(f"{content_hash}:{view}:{attempt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
