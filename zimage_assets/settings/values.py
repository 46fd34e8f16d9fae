"""Reading one variable: integers, numbers, choices, flags and URL lists, each failing with a message that names it."""

from __future__ import annotations

from pathlib import Path


def integer(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


def choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name) or allowed[0]
    if raw not in allowed:
        raise ValueError(f"{name}={raw!r}: use one of {', '.join(allowed)}")
    return raw


def number(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name}={raw!r} must be a finite number of at least 0")
    return value


def url_list(env: dict[str, str], name: str) -> tuple:
    return tuple(u.strip() for u in (env.get(name) or "").split(",") if u.strip())


def flag(env: dict[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: use true or false")


def pool_suffix(model: str) -> str:
    """One pool per model variant: presets keep their name, anything else a short slug."""
    slug = "".join(c if c.isalnum() else "-" for c in Path(model).name.lower()).strip("-")
    return slug[:40] or "model"
