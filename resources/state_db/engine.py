"""Plumbing shared by every topic of the state database: engines, upserts, repeated SQL snippets.

- `engine_for(url)`: one cached engine per URL (SQLite in WAL mode, or PostgreSQL through
  psycopg2), with the project's tables created on first use.
- `upsert(conn, table, rows)`: the only way rows are written where a natural key may exist.
- `rows_in_chunks(...)`: a query run over a long list of values, 900 values per `IN` list.
- `has_any_image()` / `has_up_to_date_image()`: the `EXISTS` pair "this SKU has a current image"
  and "... of its current content", used by the new-SKU, SLA and coverage queries.
- `same_attempt(a, b)`: the join of two tables about one image attempt.
- `Topic`: the base of the topic mixins that `StateDB` is composed of.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence, TypeVar

import sqlalchemy as sa

from resources.state_db import photo_tables, request_tables  # noqa: F401 - their tables join t.metadata
from resources.state_db import tables as t
from zimage_assets.domain.timestamps import utcnow  # noqa: F401 - re-exported: the tables' clock

OPEN_BATCH_STATUSES = ("minted", "running", "generated")
UPSERT_CHUNK = 5000  # rows per INSERT statement
IN_CHUNK = 900  # values per IN list (SQLite's historical limit is 999 bound parameters)

_ENGINES: dict[str, sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()

T = TypeVar("T")


def sqlalchemy_url(url: str) -> str:
    """Plain postgresql:// URLs use psycopg2 (installed with dagster-postgres): SQLAlchemy 2.1 would
    pick psycopg 3, which is not installed. An explicit driver (postgresql+psycopg://) is kept."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain) :]
    return url


def _engine(url: str) -> sa.Engine:
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": 60})

                @sa.event.listens_for(engine, "connect")
                def _sqlite_pragmas(dbapi_conn, _record):  # concurrent runs on one machine
                    cursor = dbapi_conn.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                    cursor.close()
            else:
                engine = sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
            _ENGINES[url] = engine
        return _ENGINES[url]


def engine_for(url: str) -> sa.Engine:
    """The cached engine for this URL, with every table created (once per engine)."""
    engine = _engine(url)
    if not getattr(engine, "_zimage_schema_ready", False):
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        t.metadata.create_all(engine)
        _add_missing_columns(engine)
        engine._zimage_schema_ready = True  # type: ignore[attr-defined]
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Nullable columns added to a table after a database was created: ALTER TABLE ADD COLUMN.

    `create_all` makes missing tables only; a column that later versions added to an existing
    table (always nullable, so old rows stay valid) is added here, once.
    """
    present = {table.name: {c["name"] for c in sa.inspect(engine).get_columns(table.name)} for table in t.metadata.sorted_tables}
    for table in t.metadata.sorted_tables:
        for column in table.columns:
            if column.name in present[table.name] or not column.nullable:
                continue
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {column.type.compile(dialect=engine.dialect)}')
            except sa.exc.DBAPIError:  # another process added it first
                if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                    raise


def dispose_engines() -> None:
    """Drop pooled connections (tests, or after a database restart)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def rows_in_chunks(conn: sa.Connection, values: Sequence[Any], query: Callable[[Sequence[Any]], sa.Select]) -> Iterator[sa.Row]:
    """The rows of `query(chunk)` for each chunk of `values` short enough for one `IN` list."""
    for chunk in chunks(values, IN_CHUNK):
        yield from conn.execute(query(chunk))


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, or update every non-key column of those whose primary key exists."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}: use SQLite or PostgreSQL")
    keys = [c.name for c in table.primary_key.columns]
    for chunk in chunks(rows, UPSERT_CHUNK):
        stmt = insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates) if updates else stmt.on_conflict_do_nothing()
        conn.execute(stmt, list(chunk))


def has_any_image() -> sa.Exists:
    """EXISTS: the outer query's SKU (`skus` row) has a current image, of any content."""
    return sa.exists().where(t.sku_images.c.sku == t.skus.c.sku)


def has_up_to_date_image() -> sa.Exists:
    """EXISTS: the outer query's SKU has a current image made from its current content."""
    img, s = t.sku_images, t.skus
    return sa.exists().where(img.c.sku == s.c.sku, img.c.content_hash == s.c.content_hash)


def same_attempt(a: sa.FromClause, b: sa.FromClause) -> sa.ColumnElement[bool]:
    """Join condition: rows of `a` and `b` about the same (batch_id, sku, view, attempt)."""
    return sa.and_(*[a.c[name] == b.c[name] for name in ("batch_id", "sku", "view", "attempt")])


def like_prefix(prefix: str, separator: str = "/") -> str:
    """A LIKE pattern (escape character `\\`) for values that start with `prefix` + `separator`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}{separator}%"


class Topic:
    """Base of the topic mixins: each reads and writes through StateDB's cached `engine`."""

    if TYPE_CHECKING:

        @property
        def engine(self) -> sa.Engine: ...
