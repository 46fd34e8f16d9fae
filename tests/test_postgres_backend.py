"""PostgreSQL for real: Dagster's storage through deploy/dagster.postgres.yaml (dagster-postgres)
and the project's tables through ZIMAGE_DB_URL, on the shared server, in a database of our own."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa
import yaml

from resources.state_db import sqlalchemy_url

from conftest import REPO, Project, metadata_of
from servers import dagster_pg_env

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]
DEPLOY_CONFIG = REPO / "deploy" / "dagster.postgres.yaml"


@contextmanager
def postgres_instance(url: str, monkeypatch):
    """A Dagster instance configured by the shipped production file, its URL from the environment."""
    for name, value in dagster_pg_env(url).items():
        monkeypatch.setenv(name, value)
    config = yaml.safe_load(DEPLOY_CONFIG.read_text())
    with dg.instance_for_test(overrides=config) as instance:
        yield instance


def postgres_project(url: str, monkeypatch, instance) -> Project:
    from resources import build_resources
    from zimage_assets.settings import Settings

    monkeypatch.setenv("ZIMAGE_DB_URL", url)
    return Project(build_resources(Settings.from_env()), instance)


def test_the_production_instance_file_puts_every_dagster_storage_on_postgres(project_env, monkeypatch, shared_postgres_database):
    with postgres_instance(shared_postgres_database, monkeypatch) as instance:
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            assert type(storage).__module__.startswith("dagster_postgres"), type(storage)
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_a_batch_runs_end_to_end_with_everything_on_postgres(project_env, monkeypatch, shared_postgres_database):
    url = shared_postgres_database
    with postgres_instance(url, monkeypatch) as instance:
        project = postgres_project(url, monkeypatch, instance)
        assert project.state_db.engine.dialect.name == "postgresql"
        project.ingest()
        (batch_id,) = project.mint(skus=HOODIES)
        result = project.generate(batch_id)

        images = metadata_of(result, "product_images")
        assert (images["items"], images["generated"]) == (12, 8)
        assert len(project.state_db.receipts(batch_id)) == 12
        assert len(project.state_db.current_images(HOODIES)) == 12

        # The run, its events and the batch partition are in PostgreSQL, beside the project's tables.
        assert instance.get_run_by_id(result.run_id).is_success
        assert batch_id in instance.get_dynamic_partitions("batches")
        engine = sa.create_engine(sqlalchemy_url(url))
        try:
            with engine.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
                assert {"runs", "event_logs", "dynamic_partitions"} <= tables  # Dagster's
                assert {"skus", "batches", "image_receipts", "sku_images", "generation_runs"} <= tables  # ours
                stored = conn.execute(sa.text("SELECT count(*) FROM event_logs WHERE run_id = :r"), {"r": result.run_id}).scalar()
                assert stored > 10
        finally:
            engine.dispose()

        # Re-running is idempotent on PostgreSQL too (the upserts are dialect-specific).
        counts = project.state_db.table_counts()
        again = metadata_of(project.generate(batch_id), "product_images")
        assert (again["generated"], again["already_stored"]) == (0, 12)
        assert project.state_db.table_counts() == counts

        # The metrics read both from PostgreSQL.
        from resources.metrics import exposition

        text = exposition(project.state_db, instance).decode()
        assert 'zimage_requests_total{model="tiny-random-zimage",priority="normal",status="generated"} 8.0' in text
        assert 'zimage_metrics_source_up{source="dagster"} 1.0' in text


def test_control_characters_in_a_catalog_give_the_same_result_on_sqlite_and_postgres(project_env, monkeypatch, shared_postgres_database, tmp_path):
    """A NUL byte in a title, a description, an attribute and a SKU: the same SKUs, notes and
    rejects on both backends (PostgreSQL refuses NUL in text, SQLite stores it)."""
    catalog = tmp_path / "nul.csv"
    catalog.write_bytes(
        b"sku,title,description,color\n"
        b"NUL-1,Mug\x00 One,Hand\x00made,Re\x00d\n"
        b"BAD\x00SKU,Bad,fine,Blue\n"
        b"OK-3,Cap,fine,Black\n"
    )
    results = {}
    for name, url in (("sqlite", ""), ("postgres", shared_postgres_database)):
        with (postgres_instance(url, monkeypatch) if url else dg.instance_for_test()) as instance:
            if url:
                project = postgres_project(url, monkeypatch, instance)
            else:
                from resources import build_resources
                from zimage_assets.settings import Settings

                project = Project(build_resources(Settings.from_env()), instance)
            result = project.ingest(catalog, fmt="generic", raise_on_error=False)
            assert result.success, name
            products = project.state_db.products(["NUL-1", "OK-3"])
            (ingest_id,) = {r["last_ingest_id"] for r in products.values()}
            results[name] = (
                {sku: (p["title"], p["description"], p["attributes"], p["note"]) for sku, p in products.items()},
                [(r["row_number"], r["sku"], r["reason"].split(":")[0]) for r in project.state_db.rejects(ingest_id)],
            )
    assert results["sqlite"] == results["postgres"]
    products, rejects = results["postgres"]
    assert products["NUL-1"][:3] == ("Mug One", "Handmade", {"color": "Red"})
    assert rejects == [(2, "BAD\\x00SKU", "invalid_sku")]
