"""Small helpers that format Dagster metadata (tables, figures) for the UI."""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], max_cell: int = 80) -> str:
    if not rows:
        return "_none_"

    def cell(value: Any) -> str:
        text = str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= max_cell else text[: max_cell - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
