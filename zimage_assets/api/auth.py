"""Who is asking: `Authorization: Bearer zk_...`, the key's scopes, and its requests per minute.

Every failure is an `ApiError` whose JSON body says why: 401 (no key, a malformed, unknown or
revoked key; with `WWW-Authenticate: Bearer`), 403 (a scope the key lacks), 429 (the key's
requests per minute are used up; `Retry-After` says for how many seconds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from resources.state_db import StateDB
from zimage_assets.domain import api_keys


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    field: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    headers: dict = dataclasses.field(default_factory=dict)

    def body(self) -> dict:
        return {"error": {"code": self.code, "field": self.field, "message": self.message, **self.extra}}


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, field="Authorization", headers={"WWW-Authenticate": 'Bearer realm="zimage"'})


def authorize(state_db: StateDB, authorization: str | None, scope: str, now: datetime) -> dict:
    """The key's row, once it is valid, has `scope` and a request left this minute."""
    if not authorization:
        raise _unauthorized("missing_key", "send your API key as `Authorization: Bearer zk_...`")
    kind, _, token = authorization.partition(" ")
    parsed = api_keys.parse_key(token) if kind.lower() == "bearer" else None
    if parsed is None:
        raise _unauthorized("malformed_key", "the Authorization header must be `Bearer zk_<id>_<secret>`")
    key_id, secret = parsed
    key = state_db.api_key(key_id)
    if key is None or not api_keys.secret_matches(secret, key["secret_sha256"]):
        raise _unauthorized("invalid_key", "unknown API key")
    if key["revoked_at"] is not None:
        raise _unauthorized("revoked_key", f"API key {key_id} was revoked")
    if scope not in key["scopes"]:
        raise ApiError(403, "missing_scope", f"API key {key_id} lacks the {scope!r} scope (it has: {', '.join(key['scopes'])})")
    window = api_keys.minute_window(now)
    if not state_db.take_request(key_id, window, key["requests_per_minute"]):
        wait = api_keys.retry_after_seconds(now, window, api_keys.MINUTE)
        raise ApiError(
            429, "requests_per_minute", f"API key {key_id} may make {key['requests_per_minute']} requests a minute; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    return key
