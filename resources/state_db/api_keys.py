"""API keys and their usage counters: who may ask for images, and how much.

Keys are stored with the SHA-256 of their secret only (`zimage_assets/domain/api_keys.py` makes
and checks them). Usage is a fixed-window counter per key in `api_usage`, incremented with one
upsert that returns the new count, so every API process (and machine) shares the same limits.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import sqlalchemy as sa

from resources.state_db import request_tables as rt
from resources.state_db.engine import Topic


def dialect_insert(conn: sa.Connection, table: sa.Table):
    """INSERT with ON CONFLICT clauses for the connection's dialect (SQLite or PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def add_usage(conn: sa.Connection, key_id: str, period: str, started_at: datetime, amount: int) -> int:
    """Add `amount` to the key's counter of this window, in `conn`'s transaction; the new count.

    A write, and the first statement of its transaction where it matters: on SQLite it takes the
    write lock before anything is read, so concurrent requests of one key queue here instead of
    failing on a stale snapshot.
    """
    u = rt.api_usage
    stmt = dialect_insert(conn, u).values(key_id=key_id, period=period, started_at=started_at, used=amount)
    stmt = stmt.on_conflict_do_update(index_elements=["key_id", "period", "started_at"], set_={"used": u.c.used + amount})
    return int(conn.execute(stmt.returning(u.c.used)).scalar_one())


class OverLimit(Exception):
    """Raised inside a transaction to roll it back when a counter went over its limit."""


class ApiKeyState(Topic):
    def add_api_key(self, row: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(rt.api_keys.insert().values(**{**row, "scopes": json.dumps(list(row["scopes"]))}))

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(rt.api_keys).where(rt.api_keys.c.key_id == key_id)).first()
        return _key(row) if row else None

    def api_keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(sa.select(rt.api_keys).order_by(rt.api_keys.c.created_at, rt.api_keys.c.key_id))]

    def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        """Revoke a key (it stays in the table); False when no such key is active."""
        k = rt.api_keys
        with self.engine.begin() as conn:
            return conn.execute(k.update().where(k.c.key_id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=now)).rowcount > 0

    def take_request(self, key_id: str, window_start: datetime, limit: int) -> bool:
        """Count one request in the key's minute; False (and not counted) when it is over `limit`."""
        try:
            with self.engine.begin() as conn:
                if add_usage(conn, key_id, "minute", window_start, 1) > limit:
                    raise OverLimit
        except OverLimit:  # rolled back: a refused request uses nothing
            return False
        return True

    def usage(self, key_id: str, period: str, started_at: datetime) -> int:
        u = rt.api_usage
        query = sa.select(u.c.used).where(u.c.key_id == key_id, u.c.period == period, u.c.started_at == started_at)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def forget_usage(self, before: datetime) -> int:
        """Drop counters of windows that started before `before` (they limit nothing any more)."""
        with self.engine.begin() as conn:
            return conn.execute(rt.api_usage.delete().where(rt.api_usage.c.started_at < before)).rowcount


def _key(row) -> dict[str, Any]:
    record = dict(row._mapping)
    record["scopes"] = tuple(json.loads(record["scopes"]))
    return record
