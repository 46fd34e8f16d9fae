"""Reading a catalog file: bytes, CSV text or a local path -> a DataFrame of strings.

:func:`read_catalog_table` is the entry point (Parquet or CSV / TSV; the CSV delimiter sniffed;
rows with more fields than the header kept and listed for ``parse_catalog`` to reject).
:func:`stringify_frame` / :func:`needs_stringify` make any DataFrame all-``str`` (Parquet
tables, frames handed to ``parse_catalog`` directly); :func:`dedupe_names` makes repeated
column names unique (``a``, ``a.1``) as pandas does. Nothing here knows a catalog format.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

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

    A data line with more fields than the header is kept (first fields) and listed in
    ``df.attrs["malformed_rows"]`` (``{1-based row: message}``); ``parse_catalog`` rejects
    those rows with reason ``malformed_row`` instead of guessing which field shifted.
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
    def source():
        return path if path is not None else io.BytesIO(raw)

    lossy = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(
                source(), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                encoding="utf-8-sig", index_col=False, skip_blank_lines=True,
            )
        lossy = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"catalog {label!r} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r}"
            f" at offset {exc.start}); export it as UTF-8"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise CatalogFormatError(f"catalog is empty: {label!r} has no header row") from exc
    except pd.errors.ParserError as exc:
        if "Expected" not in str(exc):  # e.g. "EOF inside string": a truncated file
            raise CatalogFormatError(f"catalog {label!r} is not valid CSV: {exc}") from exc
        lossy = True
    except (OSError, ValueError) as exc:
        raise CatalogFormatError(f"cannot read catalog {label!r}: {exc}") from exc
    if lossy:
        # Some line has more fields than the header: redo it with the csv module, which
        # tells us which rows, so they can be rejected instead of silently truncated.
        df = _read_csv_ragged(source(), sep, label)
    df.columns = [str(c) for c in df.columns]
    return df


def _read_csv_ragged(src, sep: str, label: str) -> pd.DataFrame:
    import csv

    if isinstance(src, Path):
        fh = open(src, encoding="utf-8-sig", newline="")
    else:
        fh = io.TextIOWrapper(src, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration as exc:
            raise CatalogFormatError(f"catalog is empty: {label!r} has no header row") from exc
        n = len(header)
        rows: list[list[str]] = []
        malformed: dict[int, str] = {}
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0]):
                continue  # blank line, as pandas skips them
            if len(fields) > n:
                malformed[len(rows) + 1] = (
                    f"{len(fields)} fields where the header has {n}; extra: "
                    + sep.join(fields[n:])
                )
                fields = fields[:n]
            elif len(fields) < n:
                fields = fields + [""] * (n - len(fields))
            rows.append(fields)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"catalog {label!r} is not UTF-8 text; export it as UTF-8") from exc
    except csv.Error as exc:
        raise CatalogFormatError(f"catalog {label!r} is not valid CSV: {exc}") from exc
    finally:
        fh.close()
    df = pd.DataFrame(rows, columns=dedupe_names(header), dtype=str)
    df.attrs["malformed_rows"] = malformed
    return df


def dedupe_names(names: list[str]) -> list[str]:
    """``["a", "a", "b"]`` -> ``["a", "a.1", "b"]`` (pandas' rule for repeated headers)."""
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            out.append(f"{nm}.{seen[nm]}")
        else:
            seen[nm] = 0
            out.append(nm)
    return out


def _read_parquet(src, label: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(src)
    except Exception as exc:  # pyarrow raises several types
        raise CatalogFormatError(
            f"catalog {label!r} is not a readable Parquet file: {exc}") from exc
    return stringify_frame(df)


def stringify_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as str, nulls as "", integral floats without the ".0"."""
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_float_dtype(s.dtype):
            vals = s.tolist()
            present = [v for v in vals if v == v]
            if all(math.isfinite(v) and float(v).is_integer() for v in present):
                out[str(col)] = ["" if v != v else str(int(v)) for v in vals]
            else:
                out[str(col)] = ["" if v != v else repr(float(v)) for v in vals]
        elif pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
            out[str(col)] = s.fillna("").tolist()
        else:
            out[str(col)] = [_cell_str(v) for v in s.tolist()]
    return pd.DataFrame(out, columns=[str(c) for c in df.columns], dtype=str)


def _cell_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v != v:
        return ""
    if v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


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

