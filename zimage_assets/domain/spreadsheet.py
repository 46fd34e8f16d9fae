"""CSV cells that are safe to open in a spreadsheet (CSV formula injection).

SKUs, titles and reasons come from untrusted catalog text. A cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is run as a formula by Excel, LibreOffice and Google
Sheets when a reviewer opens the file. :func:`spreadsheet_cell` writes such a text cell with a
leading ``'`` (shown as text, never evaluated; OWASP's advice); numbers are left alone.
:func:`from_spreadsheet_cell` undoes it when a file we wrote comes back (a filled-in review CSV).
JSON exports keep the original text.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def from_spreadsheet_cell(text: str) -> str:
    """The original text of a cell written by :func:`spreadsheet_cell`."""
    if text.startswith("'") and text[1:2] and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text
