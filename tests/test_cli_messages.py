"""What `zimage` says when something is wrong: the real cause in one or two lines, before any
slow start-up or minting where it can know, exit status 1 (130 when interrupted), never a
traceback. Real processes, a real instance on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOODIE = "MH01-XS-Black"


def _env(project_env, tmp_path, **extra) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, **project_env, "DAGSTER_HOME": str(home), **extra}


def _zimage(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "zimage_assets.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _runs(env) -> list:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return instance.get_runs()


def _assert_one_clear_error(done, *needles):
    assert done.returncode == 1, (done.stdout, done.stderr)
    err = done.stderr.strip()
    assert err.startswith("error: "), err
    assert "Traceback" not in done.stdout + done.stderr
    assert "Error occurred while executing" not in err and "dagster._core" not in err
    first_lines = "\n".join(line for line in err.splitlines() if not line.startswith("(run "))
    assert len(first_lines.splitlines()) <= 2, err
    for needle in needles:
        assert needle.lower() in err.lower(), (needle, err)


@pytest.fixture
def ingested(project_env, tmp_path):
    env = _env(project_env, tmp_path)
    assert _zimage(env, "ingest").returncode == 0
    return env


# ---- settings, checked before anything runs ----


@pytest.mark.parametrize(
    "variable, value, needles",
    [
        ("ZIMAGE_DEVICE", "gpu", ["ZIMAGE_DEVICE='gpu'", "cuda"]),
        ("ZIMAGE_DTYPE", "float16", ["ZIMAGE_DTYPE='float16'", "bfloat16"]),
        ("ZIMAGE_MODEL", "/nonexistent", ["ZIMAGE_MODEL='/nonexistent'", "no such folder"]),
        ("ZIMAGE_DB_URL", "foo://bar", ["ZIMAGE_DB_URL", "sqlite", "postgresql"]),
    ],
)
def test_bad_settings_stop_every_command_before_any_run(project_env, tmp_path, variable, value, needles):
    env = _env(project_env, tmp_path, **{variable: value})
    done = _zimage(env, "mint", "--sku", HOODIE, "--run")
    _assert_one_clear_error(done, *needles)
    assert not _runs(env)  # nothing ran, nothing was minted


def test_a_device_that_is_not_there_is_reported_before_minting(ingested):
    env = {**ingested, "ZIMAGE_DEVICE": "cuda:99"}  # no machine has 100 GPUs
    done = _zimage(env, "mint", "--sku", HOODIE, "--run")
    _assert_one_clear_error(done, "ZIMAGE_DEVICE=cuda:99")
    assert {r.job_name for r in _runs(env)} == {"ingest_catalog"}  # no batch minted


def test_a_read_only_image_store_is_named_before_minting(ingested):
    env = {**ingested, "ZIMAGE_STORAGE_URL": "/sys/zimage-store"}
    done = _zimage(env, "mint", "--sku", HOODIE, "--run")
    _assert_one_clear_error(done, "image store not writable", "/sys/zimage-store")
    assert {r.job_name for r in _runs(env)} == {"ingest_catalog"}


def test_an_unreachable_database_is_named_with_its_url_and_no_password(project_env, tmp_path):
    env = _env(project_env, tmp_path, ZIMAGE_DB_URL="postgresql://zimage:s3cret@127.0.0.1:9/catalog")
    for args in (["ingest"], ["run", "manual-20990101T0000-0001"]):
        done = _zimage(env, *args)
        _assert_one_clear_error(done, "127.0.0.1:9", "refused")
        assert "s3cret" not in done.stderr


def test_unreachable_dagster_storage_is_one_line_not_a_flood_of_retries(project_env, tmp_path):
    home = tmp_path / "pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "deploy" / "dagster.postgres.yaml").read_text())
    pg = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "9", "DAGSTER_PG_DB": "x", "DAGSTER_PG_USERNAME": "u", "DAGSTER_PG_PASSWORD": "s3cret"}
    done = _zimage({**os.environ, **project_env, "DAGSTER_HOME": str(home), **pg}, "ingest")
    _assert_one_clear_error(done, "cannot reach Dagster's storage", str(home))
    assert "Retrying" not in done.stderr and "s3cret" not in done.stderr


def test_unknown_format_is_refused_before_start_up(project_env, tmp_path):
    env = _env(project_env, tmp_path)
    done = _zimage(env, "ingest", "--format", "excel")
    _assert_one_clear_error(done, "unknown catalog format 'excel'", "shopify")
    assert not _runs(env)


# ---- errors inside runs: the cause, unwrapped ----


def test_a_batch_whose_prompts_are_all_blocked_says_so(project_env, tmp_path):
    catalog = tmp_path / "bad.csv"
    catalog.write_text("sku,title,category,color\nBAD-1,nude woman posing,Women/Tops,Red\n")
    env = _env(project_env, tmp_path)
    assert _zimage(env, "ingest", "--source", str(catalog), "--format", "generic").returncode == 0
    done = _zimage(env, "mint", "--sku", "BAD-1", "--run")
    _assert_one_clear_error(done, "prompt_safety", "BLOCK")
    assert "(run " in done.stderr


def test_the_cause_of_a_plain_exception_in_a_run_is_shown(tmp_path):
    import dagster as dg

    from zimage_assets.cli_errors import run_failure_message

    @dg.asset
    def writes_somewhere():
        raise PermissionError(13, "Permission denied", "/srv/images/x.png")

    with dg.instance_for_test() as instance:
        result = dg.materialize([writes_somewhere], instance=instance, raise_on_error=False)
    assert run_failure_message(result) == "PermissionError: [Errno 13] Permission denied: '/srv/images/x.png'"


def test_the_missing_columns_hint_names_the_cli_option_and_it_works(project_env, tmp_path):
    catalog = tmp_path / "renamed.csv"
    catalog.write_text("ProductCode,Name,Dept\nP-1,Blue Mug,Gear/Mugs\n")
    env = _env(project_env, tmp_path)
    done = _zimage(env, "ingest", "--source", str(catalog), "--format", "generic")
    _assert_one_clear_error(done, "missing required columns", "--map")
    assert "mapping=" not in done.stderr
    ok = _zimage(env, "ingest", "--source", str(catalog), "--format", "generic", "--map", "ProductCode=sku", "--map", "Name=title", "--map", "Dept=category")
    assert ok.returncode == 0, ok.stderr
    assert "1 SKUs accepted" in ok.stdout


def test_ingesting_a_workbook_names_it(project_env, tmp_path):
    import zipfile

    workbook = tmp_path / "products.xlsx"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    done = _zimage(_env(project_env, tmp_path), "ingest", "--source", str(workbook))
    _assert_one_clear_error(done, "Excel workbook", "CSV")


# ---- mint: unknown SKUs, several categories ----


def test_minting_unknown_skus_names_them_and_fails_and_skus_are_stripped(ingested):
    done = _zimage(ingested, "mint", "--sku", "NOPE-1", "--sku", f"  {HOODIE}  ", "--sku", "NOPE-2")
    _assert_one_clear_error(done, "NOPE-1", "NOPE-2", "unknown")
    assert HOODIE not in done.stderr
    assert "minted" not in done.stdout
    ok = _zimage(ingested, "mint", "--sku", f"  {HOODIE}\t")
    assert ok.returncode == 0 and "minted 1 batch(es)" in ok.stdout, ok.stderr


def test_several_categories_are_all_minted(ingested):
    from resources.state_db import StateDB

    done = _zimage(ingested, "mint", "--category", "Men/Bottoms/Shorts", "--category", "Women/Bottoms/Pants")
    assert done.returncode == 0, done.stderr
    db = StateDB(url=f"sqlite:///{Path(ingested['ZIMAGE_HOME']) / 'zimage.sqlite'}")
    skus = {i["sku"] for b in db.batches() for i in db.batch_items(b["batch_id"])}
    assert {p["category"] for p in db.products(skus).values()} == {"Men/Bottoms/Shorts", "Women/Bottoms/Pants"}
    assert len(skus) == 148 + 91


# ---- pipes and Ctrl-C ----


@pytest.mark.parametrize("command", [["-m", "zimage_assets.cli", "where"], ["-m", "zimage_assets.qc_cli", "prompts", "-"]])
def test_output_cut_short_by_a_pipe_is_no_traceback(project_env, tmp_path, command):
    env = _env(project_env, tmp_path)
    stdin = "\n".join(["a plain product photo of a mug"] * 5000)
    shell = " ".join([sys.executable, *[f"'{c}'" for c in command]]) + " | head -3"
    done = subprocess.run(["bash", "-c", shell], env=env, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_ctrl_c_during_a_run_says_how_to_resume_and_leaves_the_batch_resumable(ingested):
    from dagster import DagsterInstance, DagsterRunStatus

    from resources.state_db import StateDB

    minted = _zimage(ingested, "mint", "--sku", HOODIE)
    batch_id = minted.stdout.split("minted 1 batch(es): ")[1].split()[0]
    proc = subprocess.Popen([sys.executable, "-m", "zimage_assets.cli", "run", batch_id], env=ingested, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = StateDB(url=f"sqlite:///{Path(ingested['ZIMAGE_HOME']) / 'zimage.sqlite'}")
    deadline = time.time() + 300
    while time.time() < deadline and (db.batch(batch_id)["status"] != "running"):
        time.sleep(0.2)
    assert db.batch(batch_id)["status"] == "running"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1] == "interrupted; run it again to resume", err
    assert "Traceback" not in err and "dagster." not in err
    assert db.batch(batch_id)["status"] == "failed"
    with DagsterInstance.from_config(ingested["DAGSTER_HOME"]) as instance:
        (run,) = [r for r in instance.get_runs() if r.job_name == "generate_batch"]
        assert run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    again = _zimage(ingested, "run", batch_id)
    assert again.returncode == 0, again.stderr
