"""Every environment variable the project reads, in one place.

Switching a part from its embedded default to production is configuration, not code:
set the variable, restart. `Settings.from_env()` is the only reader of `os.environ` for
project settings; resources are built from it in `resources/__init__.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CATALOG = PACKAGE_DIR / "sample_data" / "products.csv"
DEFAULT_TEMPLATES = PACKAGE_DIR / "templates" / "default.yaml"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Field docs double as the README's variable table."""

    home: Path  # ZIMAGE_HOME: where the embedded defaults keep their files
    db_url: str  # ZIMAGE_DB_URL: SQLAlchemy URL of the project's tables
    storage_url: str  # ZIMAGE_STORAGE_URL: image store (folder path, file://, s3://bucket/prefix)
    public_base_url: str  # ZIMAGE_PUBLIC_BASE_URL: CDN base URL for published images
    cache_url: str  # ZIMAGE_CACHE_URL: result cache ("embedded" or redis://...)
    model: str  # ZIMAGE_MODEL: tiny | turbo | base | a hub id | a local folder
    model_revision: str  # ZIMAGE_MODEL_REVISION: hub revision (branch, tag or commit)
    model_path: str  # ZIMAGE_MODEL_PATH: local folder holding the weights of the chosen preset
    models_dir: str  # ZIMAGE_MODELS_DIR: where the tiny model is built once and kept
    device: str  # ZIMAGE_DEVICE: auto | cuda | cuda:N | cpu | mps
    dtype: str  # ZIMAGE_DTYPE: auto | bfloat16 | float32
    batch_size: int  # ZIMAGE_BATCH_SIZE: images per pipeline call
    templates_path: str  # ZIMAGE_TEMPLATES: prompt templates YAML
    catalog_source: str  # ZIMAGE_CATALOG_SOURCE: default catalog for sku_catalog
    max_items_per_batch: int  # ZIMAGE_MAX_ITEMS_PER_BATCH: SKU x view items per batch
    gpu_pool: str  # ZIMAGE_GPU_POOL: Dagster concurrency pool claimed by the GPU asset

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("ZIMAGE_HOME") or "zimage_data").expanduser().resolve()
        model = env.get("ZIMAGE_MODEL") or "tiny"
        return cls(
            home=home,
            db_url=env.get("ZIMAGE_DB_URL") or f"sqlite:///{home / 'zimage.sqlite'}",
            storage_url=env.get("ZIMAGE_STORAGE_URL") or str(home / "images"),
            public_base_url=env.get("ZIMAGE_PUBLIC_BASE_URL") or "",
            cache_url=env.get("ZIMAGE_CACHE_URL") or "embedded",
            model=model,
            model_revision=env.get("ZIMAGE_MODEL_REVISION") or "",
            model_path=env.get("ZIMAGE_MODEL_PATH") or "",
            models_dir=env.get("ZIMAGE_MODELS_DIR") or str(home / "models"),
            device=env.get("ZIMAGE_DEVICE") or "auto",
            dtype=env.get("ZIMAGE_DTYPE") or "auto",
            batch_size=_positive_int(env, "ZIMAGE_BATCH_SIZE", 4),
            templates_path=env.get("ZIMAGE_TEMPLATES") or str(DEFAULT_TEMPLATES),
            catalog_source=env.get("ZIMAGE_CATALOG_SOURCE") or str(SAMPLE_CATALOG),
            max_items_per_batch=_positive_int(env, "ZIMAGE_MAX_ITEMS_PER_BATCH", 200),
            gpu_pool=env.get("ZIMAGE_GPU_POOL") or f"gpu-{_pool_suffix(model)}",
        )

    def describe(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be at least 1")
    return value


def _pool_suffix(model: str) -> str:
    """One pool per model variant: presets keep their name, anything else a short slug."""
    slug = "".join(c if c.isalnum() else "-" for c in Path(model).name.lower()).strip("-")
    return slug[:40] or "model"
