"""Reading a catalog file: bytes, CSV text or a local path -> a DataFrame of strings.

:func:`read_catalog_table` is the entry point (Parquet or CSV / TSV; the CSV delimiter sniffed;
strict quoting; rows with more or fewer fields than the header kept and listed for
``parse_catalog`` to reject; other file types such as ZIP, .xlsx or gzip named and refused).
:func:`stringify_frame` / :func:`needs_stringify` make any DataFrame all-``str`` (Parquet
tables, frames handed to ``parse_catalog`` directly), one rule per kind of value;
:func:`refuse_repeated_columns` refuses a table that names a column twice. Nothing here knows a
catalog format.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zimage_assets.domain.catalog.normalising import column_key
from zimage_assets.domain.catalog.rows import CatalogFormatError

_PARQUET_SUFFIXES = (".parquet", ".pq")
_TSV_SUFFIXES = (".tsv", ".tab")


def read_catalog_table(data: bytes | str | os.PathLike, name: str = "") -> pd.DataFrame:
    """Read a CSV/TSV or Parquet catalog into a DataFrame of ``str`` (empty cells ``""``).

    ``data`` is the file's bytes, a local path (``str`` or ``PathLike``), or CSV text (a
    ``str`` holding a newline). ``name`` (or the path) gives the suffix: ``.parquet``/``.pq``
    -> Parquet, ``.tsv``/``.tab`` -> tab separated, anything else -> CSV; bytes starting with
    ``PAR1`` are Parquet whatever the name. A CSV's delimiter (``,`` ``;`` or tab) is sniffed
    from its header line. UTF-8 with or without BOM; quoted multi-line fields are fine.

    A data line with more or fewer fields than the header is kept (cut or padded) and listed in
    ``df.attrs["malformed_rows"]`` (``{1-based row: message}``); ``parse_catalog`` rejects
    those rows with reason ``malformed_row`` instead of guessing which field shifted. Broken
    quoting (a quote that swallows the following lines) refuses the file, naming the row and
    line where it starts; so does a header that names a column twice.
    """
    path: Path | None = None
    raw: bytes | None = None
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif isinstance(data, str) and ("\n" in data or "\r" in data):
        raw = data.encode("utf-8")
    elif isinstance(data, (str, os.PathLike)):
        path = Path(os.fspath(data))
        name = name or path.name
        if not path.is_file():
            raise CatalogFormatError(f"cannot read catalog {str(path)!r}: no such file")
    else:
        raise CatalogFormatError(
            f"cannot read catalog from a {type(data).__name__}; pass bytes or a path"
        )
    label = name or ("<bytes>" if path is None else str(path))

    try:
        if path is not None:
            with open(path, "rb") as fh:
                head = fh.read(65536)
        else:
            head = raw[:65536]
    except OSError as exc:
        raise CatalogFormatError(f"cannot read catalog {label!r}: {exc}") from exc

    suffix = os.path.splitext(name.lower())[1]
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise CatalogFormatError(f"catalog is empty: {label!r} has no header and no rows")
    is_parquet = head[:4] == b"PAR1"
    if suffix in _PARQUET_SUFFIXES and not is_parquet:
        raise CatalogFormatError(f"catalog {label!r} is named as Parquet but is not a Parquet file")
    if is_parquet:
        return _read_parquet(path if path is not None else io.BytesIO(raw), label)
    _refuse_other_file_types(head, path, raw, label)
    if suffix in _TSV_SUFFIXES:
        sep = "\t"
    else:
        sep = _sniff_delimiter(head)
    return _read_csv(path, raw, sep, label)


def _sniff_delimiter(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first, in_quote = [], False
    for ch in text:  # the header line, outside quotes
        if ch == '"':
            in_quote = not in_quote
        elif ch in "\r\n" and not in_quote:
            break
        elif not in_quote:
            first.append(ch)
    line = "".join(first)
    counts = {sep: line.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _read_csv(path: Path | None, raw: bytes | None, sep: str, label: str) -> pd.DataFrame:
    """Every record of the file through Python's csv module with strict quoting.

    A record that breaks the quoting rules (a quote opened and never closed, text after a closing
    quote), or that spans several lines and has the wrong number of fields, means the row
    boundaries themselves are unknown from there on: the file is refused, naming the row and line
    where that record starts. A one-line record with too many or too few fields is kept (padded
    or cut) and listed in ``attrs["malformed_rows"]`` for ``parse_catalog`` to reject.
    """
    if path is not None:
        fh = open(path, encoding="utf-8-sig", newline="")
    else:
        fh = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    rows: list[list[str]] = []
    malformed: dict[int, str] = {}
    last_line = 0
    try:
        reader = csv.reader(fh, delimiter=sep, strict=True)
        header = None
        while True:
            first_line = last_line + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row = len(rows) + 1
                what = "a quoted field is never closed" if "end of data" in str(exc) else f"broken quoting ({exc})"
                raise CatalogFormatError(
                    f"catalog {label!r} is not valid CSV: row {row} (line {first_line}): {what}; "
                    "a quote there swallows the lines after it. Fix the quoting (a quote inside a quoted field is written twice) and export again"
                ) from None
            spanned = reader.line_num - last_line
            last_line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0] and spanned == 1):
                continue  # a blank line
            if header is None:
                header = _header_names(fields, label)
                width = len(header)
                continue
            row = len(rows) + 1
            if len(fields) != width:
                if spanned > 1:
                    raise CatalogFormatError(
                        f"catalog {label!r} is not valid CSV: row {row} (lines {first_line}-{last_line}) is one quoted record of "
                        f"{len(fields)} fields where the header has {width}: a quote opened there swallows the lines after it. "
                        "Fix the quoting and export again"
                    )
                if len(fields) > width:
                    malformed[row] = f"{len(fields)} fields where the header has {width}; extra: " + sep.join(fields[width:])
                    fields = fields[:width]
                else:
                    malformed[row] = f"{len(fields)} fields where the header has {width} (a missing separator, or a cut line)"
                    fields = fields + [""] * (width - len(fields))
            rows.append(fields)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"catalog {label!r} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} near line {last_line + 1}); "
            "export it as UTF-8"
        ) from None
    except OSError as exc:
        raise CatalogFormatError(f"cannot read catalog {label!r}: {exc}") from exc
    finally:
        fh.close()
    if header is None:
        raise CatalogFormatError(f"catalog is empty: {label!r} has no header row")
    df = pd.DataFrame(rows, columns=range(width), dtype=str)
    df.columns = header
    df.attrs["malformed_rows"] = malformed
    return df


def _header_names(fields: list[str], label: str) -> list[str]:
    """The header's column names; a blank name becomes ``Unnamed: N`` (as pandas names it)."""
    names = [name if name.strip() else f"Unnamed: {i}" for i, name in enumerate(fields)]
    refuse_repeated_columns(names, label)
    return names


def refuse_repeated_columns(names: list, label: str = "") -> None:
    """A column named twice (compared as columns are matched: case and spaces ignored) cannot be
    read without silently dropping one of them: refuse the table, naming the repeated names."""
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(column_key(name), []).append(str(name))
    repeated = [same for same in seen.values() if len(same) > 1]
    if repeated:
        where = f"catalog {label!r}" if label else "the catalog"
        listed = "; ".join(" and ".join(repr(n) for n in same) for same in repeated)
        raise CatalogFormatError(
            f"{where} names a column more than once: {listed}; rename or remove the repeats (each column is read once, by name)"
        )


def _refuse_other_file_types(head: bytes, path: Path | None, raw: bytes | None, label: str) -> None:
    """Name what a file that is neither CSV nor Parquet really is, and what to do with it."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        members = _zip_members(path if path is not None else io.BytesIO(raw))
        if any(m.startswith("xl/") for m in members):
            raise CatalogFormatError(
                f"catalog {label!r} is an Excel workbook (.xlsx), not CSV: save it as CSV UTF-8 (File > Save As) and ingest that")
        if "content.xml" in members and "mimetype" in members:
            raise CatalogFormatError(f"catalog {label!r} is an OpenDocument spreadsheet, not CSV: save it as CSV (UTF-8) and ingest that")
        shown = ", ".join(members[:5]) + (f" and {len(members) - 5} more" if len(members) > 5 else "")
        raise CatalogFormatError(f"catalog {label!r} is a ZIP archive ({shown or 'empty'}), not CSV: unzip it and ingest the CSV inside")
    for magic, what, todo in (
        (b"\x1f\x8b", "a gzip-compressed file", "decompress it (gunzip) and ingest the CSV inside"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)", "save it as CSV UTF-8 and ingest that"),
        (b"%PDF", "a PDF document", "export the catalog as CSV"),
        (b"\xff\xfe", "UTF-16 text", "export it as CSV UTF-8"),
        (b"\xfe\xff", "UTF-16 text", "export it as CSV UTF-8"),
    ):
        if head.startswith(magic):
            raise CatalogFormatError(f"catalog {label!r} is {what}, not CSV: {todo}")


def _zip_members(source) -> list[str]:
    import zipfile

    try:
        with zipfile.ZipFile(source) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _read_parquet(src, label: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(src)
    except Exception as exc:  # pyarrow raises several types
        raise CatalogFormatError(
            f"catalog {label!r} is not a readable Parquet file: {exc}") from exc
    return stringify_frame(df)


def stringify_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as str, by one rule for each kind of value (Parquet tables, DataFrames):

    - text as is; nulls ``""``; integral floats without the ``.0``; other numbers, dates as ``str``;
    - booleans ``"true"`` / ``"false"``;
    - a list (or array) of such values is a multi-valued cell: its items one per line, the way
      every format reads several values in one cell (a category ``["Men", "Tops"]`` is the path
      ``Men/Tops``, a colour ``["Red", "Blue"]`` is ``Red, Blue``);
    - values with no text form (structs / dicts, maps, lists of lists, undecodable bytes) refuse
      the table, naming the column and the kind of value.
    """
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            out[str(col)] = ["" if v is pd.NA else ("true" if v else "false") for v in s.tolist()]
        elif pd.api.types.is_float_dtype(s.dtype):
            vals = s.tolist()
            present = [v for v in vals if v == v]
            if all(math.isfinite(v) and float(v).is_integer() for v in present):
                out[str(col)] = ["" if v != v else str(int(v)) for v in vals]
            else:
                out[str(col)] = ["" if v != v else repr(float(v)) for v in vals]
        elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            out[str(col)] = s.fillna("").tolist()
        else:
            out[str(col)] = [_cell_str(v, col) for v in s.tolist()]
    return pd.DataFrame(out, columns=[str(c) for c in df.columns], dtype=str)


def _cell_str(v: Any, col: Any) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v != v:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, np.ndarray)):
        items = list(v)
        if any(isinstance(i, (list, tuple, dict, np.ndarray)) for i in items):
            raise CatalogFormatError(f"column {str(col)!r} holds nested lists (lists of lists or maps), which have no text form: flatten it")
        return "\n".join(_cell_str(i, col) for i in items if _cell_str(i, col))
    if isinstance(v, dict):
        raise CatalogFormatError(f"column {str(col)!r} holds struct values (dicts such as {_short(v)}), which have no text form: flatten it")
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            raise CatalogFormatError(f"column {str(col)!r} holds binary values that are not UTF-8 text") from None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def needs_stringify(raw: pd.DataFrame) -> bool:
    """True when some column is not plain ``str`` throughout (numbers, nulls, bytes...)."""
    for col in raw.columns:
        s = raw[col]
        if pd.api.types.is_object_dtype(s.dtype):
            if any(type(v) is not str for v in s.tolist()):
                return True
        elif pd.api.types.is_string_dtype(s.dtype):
            if s.hasnans:
                return True
        else:
            return True
    return False

