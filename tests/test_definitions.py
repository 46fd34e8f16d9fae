"""The code location loads, and its graph has the shape the UI and the jobs rely on."""

from __future__ import annotations

import dagster as dg


def test_definitions_load_and_validate(project_env):
    from zimage_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"sku_catalog", "product_prompts", "product_images", "published_images"} <= keys
    for name in ("product_prompts", "product_images", "published_images"):
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == dg.DynamicPartitionsDefinition(name="batches")
    assert graph.get(dg.AssetKey("product_images")).pools == {"gpu-tiny"}
    assert defs.resolve_job_def("generate_batch").executor_def.name == "in_process"
    assert {s.name for s in defs.sensors} >= {"minted_batches_sensor"}
