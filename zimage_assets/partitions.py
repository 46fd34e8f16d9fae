"""Batches are the partition unit: one dynamic partition per minted batch of SKU x view items.

Not one partition per SKU: Dagster's UI slows to seconds per query at 500k partitions, and a run
per SKU wastes GPU batching. Per-SKU truth lives in the project's tables (resources/state_db/tables.py).
"""

from dagster import DynamicPartitionsDefinition

batch_partitions = DynamicPartitionsDefinition(name="batches")
