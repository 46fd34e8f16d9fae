"""Retention deletes old batch partitions from Dagster and nothing else: every SKU keeps its
history (batches, items, receipts, verdicts) and its current image."""

from __future__ import annotations

from datetime import timedelta

from daemon_harness import evaluate_sensor


def retain(project, **config):
    from jobs.retention import retention_job

    result = retention_job.execute_in_process(
        resources=project.resources, instance=project.instance, run_config={"ops": {"retire_old_batch_partitions": {"config": config}}}
    )
    return result


def test_old_partitions_go_and_history_stays(project, tmp_path):
    from resources.state_db import utcnow
    from sensors.new_skus import new_sku_sensor
    from zimage_assets.minting import mint_batches

    catalog = tmp_path / "cups.csv"
    catalog.write_text("sku,title,category,color\nCUP-1,Cup One,Gear/Misc,Red\nCUP-2,Cup Two,Gear/Misc,Blue\n")
    project.ingest(catalog, fmt="generic")
    templates = project.resources["prompt_templates"].load()
    long_ago = utcnow() - timedelta(days=120)
    (old,) = mint_batches(project.state_db, templates, [("CUP-1", "Gear/Misc")], kind="manual", max_items=10, selection={}, now=long_ago)
    (stuck,) = mint_batches(project.state_db, templates, [("CUP-2", "Gear/Misc")], kind="manual", max_items=10, selection={}, now=long_ago)
    (recent,) = mint_batches(project.state_db, templates, [("CUP-2", "Gear/Misc")], kind="manual", max_items=10, selection={})
    project.generate(old)
    project.generate(recent)
    project.instance.add_dynamic_partitions("batches", [stuck])  # minted long ago, never run: not closed
    current_before = project.state_db.current_images(["CUP-1", "CUP-2"])
    counts_before = project.state_db.table_counts()

    dry = retain(project, dry_run=True)
    assert dry.success and project.instance.has_dynamic_partition("batches", old)

    result = retain(project, older_than_days=90)
    assert result.success
    partitions = set(project.instance.get_dynamic_partitions("batches"))
    assert old not in partitions and {stuck, recent} <= partitions
    assert project.state_db.current_images(["CUP-1", "CUP-2"]) == current_before  # still served, still current
    counts_after = project.state_db.table_counts()
    assert counts_after.pop("retired_batches") == 1
    assert counts_after == {k: v for k, v in counts_before.items() if k != "retired_batches"}
    assert len(project.state_db.receipts(old)) == 2 and project.state_db.batch(old)["status"] == "published"

    again = retain(project, older_than_days=90)  # nothing retired twice
    assert again.success and project.state_db.table_counts()["retired_batches"] == 1
    # The retired batch's SKUs are not mistaken for new ones.
    assert evaluate_sensor(new_sku_sensor, project).skip_message == "no new or changed SKUs"
    meta = {k: v.value for e in result.all_events if e.is_successful_output for k, v in e.event_specific_data.metadata.items()}
    assert (meta["retired"], meta["skipped_active_runs"]) == (1, 0) and meta["batches"] == [old]
