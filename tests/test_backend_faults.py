"""Faults in the production backends: nothing is lost, and re-running completes what was missing.

Each fault is real: a private redis-server killed with SIGKILL mid-run, S3 errors injected by a
proxy in front of SeaweedFS, a private PostgreSQL restarted between runs, and a metrics process
scraped while a run is going on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import redis
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, metadata_of
from servers import counting_project, dagster_pg_env, free_port, generator_calls, port_open, promtool, wait_until

HOODIES = ["MH01-XS-Black", "MH01-S-Black", "MH01-XS-Gray"]


def _warnings(instance, result) -> list[str]:
    return [e.message for e in instance.all_logs(result.run_id) if e.level >= 30 and e.message]


def _every_receipt_has_its_image(project, batch_id) -> int:
    receipts = project.state_db.receipts(batch_id, latest_only=False)
    missing = [r["storage_key"] for r in receipts if not project.store.exists(r["storage_key"])]
    assert missing == [], f"receipts without images: {missing}"
    return len(receipts)


# ---- Redis ----


def test_redis_killed_mid_run_is_a_warning_and_misses_and_the_run_succeeds(project_env, monkeypatch, private_redis, instance, tmp_path):
    monkeypatch.setenv("ZIMAGE_CACHE_URL", private_redis.url)
    calls = tmp_path / "calls.txt"
    # SIGKILL the cache's Redis right after the generator's 2nd image was stored and remembered.
    project = counting_project(instance, calls, kill_pid=private_redis.pid, kill_after=2)
    project.ingest()
    hoodie = HOODIES[:1]  # 4 views, 4 distinct images
    (first,) = project.mint(skus=hoodie)

    result = project.generate(first)

    assert result.success
    images = metadata_of(result, "product_images")
    assert images["generated"] == 4 and images["cache_errors"] >= 1
    assert any("result cache unavailable" in w for w in _warnings(instance, result))
    assert private_redis.proc.poll() is not None  # it really died mid-run
    assert _every_receipt_has_its_image(project, first) == 4

    # Redis still down: the next batch of the same SKU misses, warns, and succeeds.
    (second,) = project.mint(skus=hoodie)
    down = metadata_of(project.generate(second), "product_images")
    assert (down["generated"], down["cache_hits"], down["cache_hit_rate"]) == (4, 0, 0.0)
    assert down["cache_errors"] >= 4

    # Redis back (empty: it keeps nothing on disk): the cache fills again and serves the next batch.
    private_redis.start()
    (third,) = project.mint(skus=hoodie)
    refill = project.generate(third)
    assert metadata_of(refill, "product_images")["cache_errors"] == 0
    assert len(list(redis.Redis.from_url(private_redis.url).scan_iter("zimage:result:*"))) == 4
    (fourth,) = project.mint(skus=hoodie)
    warm = metadata_of(project.generate(fourth), "product_images")
    assert (warm["generated"], warm["cache_hits"], warm["cache_hit_rate"]) == (0, 4, 1.0)
    assert generator_calls(calls) == 12  # cold, down, refill; none for the warm batch


# ---- S3 ----


def test_transient_s3_errors_are_retried_and_the_run_succeeds(project_env, s3_env, s3_fault_proxy, seaweedfs, instance, tmp_path):
    env = s3_env(ZIMAGE_S3_ENDPOINT_URL=s3_fault_proxy.endpoint)
    project = counting_project(instance, tmp_path / "calls.txt")
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])
    s3_fault_proxy.fail_next(3, methods=("PUT",))  # 503 SlowDown, as S3 answers when throttling

    result = project.generate(batch_id)

    assert result.success
    assert s3_fault_proxy.injected() == 3
    assert _every_receipt_has_its_image(project, batch_id) == 4
    keys = seaweedfs.keys(env["bucket"])
    assert all(f"catalog-images/{r['storage_key']}" in keys for r in project.state_db.receipts(batch_id))


def test_an_s3_outage_mid_run_loses_nothing_and_a_rerun_completes(project_env, s3_env, s3_fault_proxy, instance, tmp_path):
    s3_env(ZIMAGE_S3_ENDPOINT_URL=s3_fault_proxy.endpoint, ZIMAGE_S3_MAX_ATTEMPTS="2")
    calls = tmp_path / "calls.txt"
    project = counting_project(instance, calls)
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES)
    # The write probe and 3 images get through; then every PUT fails (500 InternalError).
    s3_fault_proxy.fail_after(4, methods=("PUT",))

    failed = project.generate(batch_id, raise_on_error=False)

    assert not failed.success
    message = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error.message
    assert "InternalError" in message and "images of this batch were stored first" in message
    s3_fault_proxy.heal()
    stored = _every_receipt_has_its_image(project, batch_id)  # what a receipt names exists
    stored_images = len({r["spec_hash"] for r in project.state_db.receipts(batch_id)})
    assert stored_images == 3 and 3 <= stored < 12

    rerun = project.generate(batch_id)

    assert rerun.success
    images = metadata_of(rerun, "product_images")
    assert (images["already_stored"], images["generated"], images["cache_hits"]) == (stored, 8 - stored_images, 0)
    assert _every_receipt_has_its_image(project, batch_id) == 12
    assert project.state_db.batch(batch_id)["status"] == "published"


def test_s3_refusing_credentials_mid_life_fails_the_run_with_the_reason(project_env, s3_env, instance, tmp_path):
    s3_env(ZIMAGE_S3_SECRET_ACCESS_KEY="rotated-away")
    project = counting_project(instance, tmp_path / "calls.txt")
    project.ingest()
    (batch_id,) = project.mint(skus=HOODIES[:1])
    result = project.generate(batch_id, raise_on_error=False)
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "refused the credentials" in message and "SignatureDoesNotMatch" in message
    assert generator_calls(tmp_path / "calls.txt") == 0


# ---- PostgreSQL ----


def test_postgresql_restarted_between_runs_does_not_break_the_next_run(project_env, monkeypatch, private_postgres):
    import dagster as dg
    import yaml

    from resources.state_db import sqlalchemy_url

    url = private_postgres.url
    for name, value in dagster_pg_env(url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZIMAGE_DB_URL", url)
    config = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())
    with dg.instance_for_test(overrides=config) as instance:
        project = counting_project(instance, private_postgres.root / "calls.txt")
        project.ingest()
        (first, second) = [project.mint(skus=[sku])[0] for sku in HOODIES[:2]]
        assert project.generate(first).success
        # A plain pool (no pre-ping) holding a connection from before the restart: the control.
        plain = sa.create_engine(sqlalchemy_url(url), pool_size=1)
        with plain.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

        private_postgres.restart()

        with pytest.raises(sa.exc.OperationalError):  # the restart really cut pooled connections
            with plain.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        plain.dispose()
        result = project.generate(second)  # the project's pool pre-pings; Dagster reconnects
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        assert len(project.state_db.receipts(second)) == 4
        assert _every_receipt_has_its_image(project, first) == 4


# ---- metrics ----


def test_the_metrics_endpoint_answers_while_a_run_is_going_on(project, instance):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zimage_assets.metrics_server", "--port", str(port), "--cache-seconds", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: port_open(port), 60, "zimage-metrics")
        project.ingest()
        (batch_id,) = project.mint(skus=HOODIES)
        scrapes: list[tuple[int, str]] = []
        done = threading.Event()

        def scrape():
            while not done.is_set():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    scrapes.append((response.status, response.read().decode()))
                time.sleep(0.05)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            result = project.generate(batch_id)
        finally:
            done.set()
            scraper.join(30)
        assert result.success

        assert len(scrapes) >= 3 and all(status == 200 for status, _ in scrapes)
        in_progress = [_metric(text, "zimage_runs_in_progress", priority="normal") for _, text in scrapes]
        assert max(in_progress) >= 1  # seen during the run
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            after = response.read().decode()
        assert _metric(after, "zimage_runs_in_progress", priority="normal") == 0
        assert _metric(after, "zimage_requests_total", status="generated", priority="normal") == 8
        check = subprocess.run([promtool(), "check", "metrics"], input=scrapes[len(scrapes) // 2][1], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.read() == b"ok\n"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output


def _metric(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
