"""The model, its device and the database: values checked here, before anything starts."""

from __future__ import annotations

import re
from pathlib import Path

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
DTYPES = ("auto", "bfloat16", "bf16", "float32", "fp32")


def device(raw: str) -> str:
    if not _DEVICE.match(raw):
        raise ValueError(f"ZIMAGE_DEVICE={raw!r}: use auto, cpu, cuda, cuda:N (a GPU index) or mps")
    return raw


def dtype(raw: str) -> str:
    if raw in ("float16", "fp16", "half"):
        raise ValueError(f"ZIMAGE_DTYPE={raw!r}: Z-Image produces NaN (black) images in float16; use bfloat16 or auto")
    if raw not in DTYPES:
        raise ValueError(f"ZIMAGE_DTYPE={raw!r}: use {', '.join(DTYPES)}")
    return raw


def model_folder(name: str, raw: str, presets: bool = False) -> str:
    """A value written as a path (/..., ./..., ~/...) must be a folder; a hub id (org/name) is not a path."""
    if raw and raw.startswith(("/", "./", "../", "~")) and not Path(raw).expanduser().is_dir():
        hint = "a preset (tiny, turbo, base), a hub id (org/name) or " if presets else ""
        raise ValueError(f"{name}={raw!r}: no such folder; give {hint}the folder that holds the weights")
    return raw


def db_url(url: str) -> str:
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+", "postgres://")):
        shown = re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", url)
        raise ValueError(f"ZIMAGE_DB_URL={shown!r}: use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
    return url
