"""Shared fixtures: an isolated project home per test, real resources, a real Dagster instance.

The tiny Z-Image is built once per session into a shared folder (as the `tiny` preset does on a
user's machine) so each test pays only for loading it.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

# Fixtures that start private servers (SeaweedFS, Redis, PostgreSQL, Pushgateway) live in servers.py.
pytest_plugins = ["servers"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # any hub access raises instead of downloading
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared"
SAMPLE_CATALOG = REPO / "zimage_assets" / "sample_data" / "products.csv"
SMALL_TEMPLATES = FIXTURES / "templates_small.yaml"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def project_env(tmp_path, monkeypatch, models_dir):
    """Environment of a fresh project home: embedded defaults, small templates."""
    env = {
        "ZIMAGE_HOME": str(tmp_path / "home"),
        "ZIMAGE_MODELS_DIR": str(models_dir),
        "ZIMAGE_TEMPLATES": str(SMALL_TEMPLATES),
        "ZIMAGE_CATALOG_SOURCE": str(SAMPLE_CATALOG),
        "ZIMAGE_MODEL": "tiny",
        # The suite's text-to-image tests publish the tiny model's (illustrative) images; the photo-first
        # tests set it back to the default, REVIEW (tests/test_photo_pipeline.py).
        "ZIMAGE_ILLUSTRATIVE_REVIEW": "false",
    }
    for name in [k for k in os.environ if k.startswith("ZIMAGE_")]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def settings(project_env):
    from zimage_assets.settings import Settings

    return Settings.from_env()


@pytest.fixture
def resources(settings):
    from resources import build_resources

    return build_resources(settings)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


class Project:
    """Drives the real assets through Dagster, the way the jobs and the UI do."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance):
        self.resources = resources
        self.instance = instance
        self.state_db = resources["state_db"]
        self.store = resources["image_store"]

    def ingest(self, source: str | Path = "", fmt: str = "auto", mapping: dict | None = None, raise_on_error: bool = True):
        from zimage_assets.assets.catalog import sku_catalog

        config = {"source": str(source), "format": fmt, "column_mapping": mapping or {}}
        return dg.materialize(
            [sku_catalog],
            resources=self.resources,
            instance=self.instance,
            run_config={"ops": {"sku_catalog": {"config": config}}},
            raise_on_error=raise_on_error,
        )

    def mint(self, **config) -> list[str]:
        from jobs.batch_jobs import mint_batches_job

        result = mint_batches_job.execute_in_process(
            run_config={"ops": {"mint_batches_op": {"config": config}}},
            resources=self.resources,
            instance=self.instance,
        )
        return result.output_for_node("mint_batches_op")

    def generate(self, batch_id: str, force: bool = False, raise_on_error: bool = True, assets=None):
        from zimage_assets.assets.images import product_images
        from zimage_assets.assets.prompts import product_prompts
        from zimage_assets.assets.publish import published_images
        from zimage_assets.assets.source_photos import source_photos

        self.instance.add_dynamic_partitions("batches", [batch_id])
        return dg.materialize(
            assets or [product_prompts, source_photos, product_images, published_images],
            partition_key=batch_id,
            resources=self.resources,
            instance=self.instance,
            run_config={"ops": {"product_images": {"config": {"force": force}}}},
            raise_on_error=raise_on_error,
            selection=None,
        )


@pytest.fixture
def project(resources, instance) -> Project:
    return Project(resources, instance)


def metadata_of(result, asset_name: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset_name:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset_name}")
