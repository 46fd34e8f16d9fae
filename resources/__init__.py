"""Resources: the only code that touches the outside world (model, storage, cache, database).

`build_resources` turns `Settings` (environment variables) into the resource instances that
Dagster injects into assets, checks, sensors and jobs.
"""

from __future__ import annotations

from zimage_assets.settings import Settings


def build_resources(settings: Settings) -> dict:
    from resources.catalog_source import CatalogSource
    from resources.generator import ZImageGenerator
    from resources.image_store import image_store_from_url
    from resources.prompt_templates import PromptTemplates
    from resources.result_cache import result_cache_from_url
    from resources.state_db import StateDB

    return {
        "state_db": StateDB(url=settings.db_url),
        "image_store": image_store_from_url(settings.storage_url, settings.public_base_url),
        "result_cache": result_cache_from_url(settings.cache_url, str(settings.home / "cache.sqlite")),
        "generator": ZImageGenerator(
            model=settings.model,
            revision=settings.model_revision,
            model_path=settings.model_path,
            models_dir=settings.models_dir,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
        ),
        "catalog_source": CatalogSource(default_source=settings.catalog_source),
        "prompt_templates": PromptTemplates(
            path=settings.templates_path, max_items_per_batch=settings.max_items_per_batch
        ),
    }
