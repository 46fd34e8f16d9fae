"""The result cache in a SQLite file (the embedded default: `$ZIMAGE_HOME/cache.sqlite`)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from resources.result_cache import ResultCache


class EmbeddedCache(ResultCache):
    """A SQLite file: no server, survives restarts, shared by runs on one machine."""

    path: str = Field(description="SQLite file of the cache")

    _local: threading.local = PrivateAttr(default_factory=threading.local)

    def describe(self) -> str:
        return f"embedded cache {self.path}"

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(Path(self.path).expanduser(), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS results (spec_hash TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)")
            self._local.conn = conn
        return conn

    def _get(self, spec_hash: str) -> dict[str, Any] | None:
        row = self._connection().execute(
            "SELECT value FROM results WHERE spec_hash = ? AND expires > ?", (spec_hash, time.time())
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _set(self, spec_hash: str, value: dict[str, Any]) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO results (spec_hash, value, expires) VALUES (?, ?, ?)",
            (spec_hash, json.dumps(value), time.time() + self.ttl_seconds),
        )
