"""API keys and their limits, as plain functions: the key's shape, how it is stored, the windows.

A key is `zk_<key id>_<secret>`: the id (12 hex characters) finds the row, the secret (32 random
bytes) is never stored, only its SHA-256 (a random 256-bit secret needs no slow hash: nothing
can be guessed from the digest). It is shown once, when created. Scopes: `generate` (POST
requests) and `read` (task status, a SKU's images).

Limits are fixed windows, counted in the project's tables so every API process shares them:
requests per minute (429 with Retry-After: the seconds to the next minute) and images per day
(UTC days; the seconds to midnight).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from datetime import datetime, timedelta

PREFIX = "zk"
SCOPES = ("generate", "read")
_KEY = re.compile(r"^zk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def new_key() -> tuple[str, str, str]:
    """(key id, the full key to show once, the secret's digest to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}_{key_id}_{secret}", secret_digest(secret)


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret), digest)


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes {text!r}: use a comma-separated list of {', '.join(SCOPES)}")
    return scopes


def minute_window(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def day_window(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def retry_after_seconds(now: datetime, window_start: datetime, length: timedelta) -> int:
    """Whole seconds until the window that `now` is in ends (at least 1)."""
    return max(1, math.ceil((window_start + length - now).total_seconds()))


MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
