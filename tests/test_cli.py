"""The `zimage` command as a user runs it: a real process, a real Dagster instance on disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _zimage(project_env, tmp_path, *args):
    env = {**os.environ, **project_env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run(
        [sys.executable, "-m", "zimage_assets.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_demo_runs_end_to_end_and_says_where_the_results_are(project_env, tmp_path):
    done = _zimage(project_env, tmp_path, "demo", "--skus", "2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    manifest = re.search(r"manifest \S+\s+(\S+manifest\.csv)", done.stdout)
    assert manifest and Path(manifest.group(1)).is_file()
    assert len(Path(manifest.group(1)).read_text().splitlines()) == 1 + 8  # header + 2 SKUs x 4 views
    assert "dagster dev" in done.stdout and "published" in done.stdout

    # The runs are on the instance the UI reads.
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        jobs = {r.job_name for r in instance.get_runs()}
    assert {"ingest_catalog", "mint_batches_job", "generate_batch"} <= jobs


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "--source", "/nonexistent/catalog.csv"], "does not exist"),
        (["ingest", "--format", "excel"], "unknown"),
        (["run", "manual-20990101T0000-0001"], "unknown batch"),
    ],
)
def test_errors_are_one_clear_line_not_a_traceback(project_env, tmp_path, args, message):
    done = _zimage(project_env, tmp_path, *args)
    assert done.returncode == 1
    assert message in done.stderr.lower() and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr + done.stdout


def test_bad_settings_are_reported_by_name(project_env, tmp_path):
    done = _zimage({**project_env, "ZIMAGE_BATCH_SIZE": "many"}, tmp_path, "where")
    assert done.returncode == 1 and "ZIMAGE_BATCH_SIZE='many' is not an integer" in done.stderr
