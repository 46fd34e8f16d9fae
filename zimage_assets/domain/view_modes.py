"""View modes in the templates, and which of a SKU's photos a view uses. Pure.

Each view of the templates YAML says how its image is made:

```yaml
photo_roles:                 # file-name conventions: the role a photo's file name gives it
  main: [_main, _front]
  back: [_back]
  side: [_side_a, _side_b, _side]
views:
  front:     {mode: photo, photos: [main], fill: 0.9, ...}     # the real photo on white, no model
  lifestyle: {mode: scene, photos: [main], fill: 0.6, position: [0.5, 0.55], shadow: true, ...}
  detail:    {mode: text, ...}                                  # text-to-image (illustrative)
```

- `photo`: no model. The product cut out of the photo, on pure white, scaled to `fill` (long side
  of its box over the frame's) and placed at `position` (its centre, shares of the frame).
- `scene`: the product placed the same way; Z-Image paints everything around it from the view's
  prompt, and the product's own pixels are composited back.
- `text`: today's text-to-image path. A view without `mode` is `text` (older template files keep
  working); it is also what a photo or scene view falls back to when the SKU has no usable photo
  with one of the view's roles (recorded, `illustrative`, REVIEW by default).

`photos` lists the roles a view takes, in order of preference: the first of the SKU's photos (in
catalog order) that has the first role wins, then the second role, ... A photo's roles are the one
its format gave it (`main` for Magento's base image, Shopify's first position, WooCommerce's first
image; see `domain/catalog/photos.py`) plus every role whose file-name suffix its name ends with
(`mh01-gray_back.jpg` -> `back`; a trailing `_1` or `-2` copy number and the extension are ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

MODES = ("photo", "scene", "text")
DEFAULT_PHOTO_ROLES: dict[str, tuple[str, ...]] = {
    "main": ("_main", "_front"),
    "back": ("_back",),
    "side": ("_side_a", "_side_b", "_side"),
    "alt1": ("_alt1",),
    "alt2": ("_alt2",),
}
DEFAULT_FILL = {"photo": 0.9, "scene": 0.6, "text": 0.0}
_COPY_NUMBER = re.compile(r"[_-]\d{1,2}$")


@dataclass(frozen=True)
class ViewMode:
    """How one view's image is made (the photo parts of a view template)."""

    mode: str = "text"
    photos: tuple[str, ...] = ()
    fill: float = 0.0
    position: tuple[float, float] = (0.5, 0.5)
    shadow: bool = False


def parse_view_mode(name: str, body: Mapping[str, Any], source: str, error: type[Exception]) -> ViewMode:
    """The mode fields of one view's YAML body; `error` (the templates' error type) names the view."""
    mode = str(body.get("mode") or "text")
    if mode not in MODES:
        raise error(f"{source}: view {name!r} has mode {mode!r}; expected one of {', '.join(MODES)}")
    roles = body.get("photos", ["main"] if mode != "text" else [])
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) and r.strip() for r in roles):
        raise error(f"{source}: view {name!r}: photos must be a list of photo roles, e.g. [main]")
    if mode != "text" and not roles:
        raise error(f"{source}: view {name!r} is a {mode} view and needs at least one photo role")
    try:
        fill = float(body.get("fill", DEFAULT_FILL[mode]))
        position = tuple(float(v) for v in body.get("position", (0.5, 0.5)))
    except (TypeError, ValueError):
        raise error(f"{source}: view {name!r}: fill must be a number and position [x, y]") from None
    if mode != "text" and not 0.05 <= fill <= 1.0:
        raise error(f"{source}: view {name!r}: fill {fill} must be between 0.05 and 1")
    if len(position) != 2 or not all(0.0 <= v <= 1.0 for v in position):
        raise error(f"{source}: view {name!r}: position must be [x, y] with shares between 0 and 1")
    return ViewMode(mode=mode, photos=tuple(r.strip() for r in roles), fill=fill, position=position, shadow=bool(body.get("shadow", False)))


def parse_photo_roles(raw: Any, source: str, error: type[Exception]) -> dict[str, tuple[str, ...]]:
    """The templates' `photo_roles` (role -> file-name suffixes); the defaults when absent."""
    if raw is None:
        return dict(DEFAULT_PHOTO_ROLES)
    if not isinstance(raw, dict) or not all(isinstance(v, list) and v for v in raw.values()):
        raise error(f"{source}: photo_roles must map a role to a list of file-name suffixes, e.g. back: [_back]")
    return {str(role): tuple(str(s).lower() for s in suffixes) for role, suffixes in raw.items()}


def file_stem(ref: str) -> str:
    """`/m/h/mh01-gray_back_1.jpg?v=3` -> `mh01-gray_back` (lower case, copy number dropped)."""
    name = ref.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return _COPY_NUMBER.sub("", stem)


def roles_of(photo: Mapping[str, Any], conventions: Mapping[str, Sequence[str]]) -> set[str]:
    """The format's role plus every role whose suffix the file name ends with."""
    stem = file_stem(str(photo["ref"]))
    roles = {str(photo["role"])}
    roles.update(role for role, suffixes in conventions.items() if any(stem.endswith(s) for s in suffixes))
    return roles


def choose_photo(view: ViewMode, photos: Sequence[Mapping[str, Any]], conventions: Mapping[str, Sequence[str]],
                 usable=lambda photo: True) -> tuple[Mapping[str, Any] | None, str]:
    """The photo a view uses (the first role that any usable photo has, photos in catalog order)
    and that role; (None, "") when none fits."""
    tagged = [(photo, roles_of(photo, conventions)) for photo in photos]
    for role in view.photos:
        for photo, roles in tagged:
            if role in roles and usable(photo):
                return photo, role
    return None, ""
