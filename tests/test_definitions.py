"""The code location loads, and its graph has the shape the UI, jobs and sensors rely on.

The snapshot makes an accidental change to the graph (an asset, a dependency, a partitioning,
a pool, a check, a job, a sensor or a schedule) show up in review. After an intended change:
    UPDATE_DEFINITIONS_SNAPSHOT=1 scripts/test tests/test_definitions.py
"""

from __future__ import annotations

import json
import os
import re

import dagster as dg

from conftest import REPO

SNAPSHOT = REPO / "tests" / "snapshots" / "definitions.json"


def _shape(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": getattr(node.partitions_def, "name", None) or (type(node.partitions_def).__name__ if node.partitions_def else None),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "pools": sorted(node.pools or []),
            "checks": sorted(c.name for c in node.check_keys),
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = {"partitions": getattr(job.partitions_def, "name", None), "executor": job.executor_def.name}
    return {
        "assets": assets,
        "jobs": jobs,
        "sensors": sorted(s.name for s in defs.sensors),
        "schedules": {s.name: s.cron_schedule for s in sorted(defs.schedules, key=lambda s: s.name)},
    }


def test_definitions_load_and_match_the_snapshot(project_env):
    from zimage_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    shape = _shape(defs)
    shape["assets"]["product_images"]["pools"] = ["<ZIMAGE_GPU_POOL>"]  # depends on the environment
    if os.environ.get("UPDATE_DEFINITIONS_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text())


def test_gpu_work_runs_in_process_and_claims_its_pool(project_env):
    from zimage_assets.definitions import defs

    (pool,) = defs.resolve_asset_graph().get(dg.AssetKey("product_images")).pools
    assert pool.startswith("gpu-")
    assert defs.resolve_job_def("generate_batch").executor_def.name == "in_process"


def test_every_setting_is_documented_in_the_readme():
    settings_source = (REPO / "zimage_assets" / "settings" / "__init__.py").read_text()
    readme = (REPO / "README.md").read_text()
    names = set(re.findall(r"# (ZIMAGE_[A-Z0-9_]+):", settings_source))
    assert len(names) > 30
    assert sorted(n for n in names if f"`{n}`" not in readme) == []


def test_the_production_instance_config_differs_only_in_storage():
    import yaml

    embedded = yaml.safe_load((REPO / "dagster.yaml").read_text())
    production = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())
    assert production.pop("storage")["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert production == embedded
