"""Time as the project keeps it: naive UTC datetimes in the tables, ISO 8601 with a `Z` outside."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what every table stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_z(moment: datetime | None, timespec: str = "seconds") -> str | None:
    """`2026-11-24T14:05:00Z` for a naive UTC datetime; None stays None."""
    if moment is None:
        return None
    return moment.isoformat(timespec=timespec) + "Z"
