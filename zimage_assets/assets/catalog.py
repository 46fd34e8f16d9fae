"""sku_catalog: any catalog export in, the normalised SKU table (and its rejects) out."""


import hashlib
import json

import dagster as dg
from pydantic import Field

from resources.catalog_source import CatalogSource, CatalogSourceError
from resources.state_db import StateDB
from zimage_assets.domain.catalog import FORMATS, CatalogFormatError, parse_catalog, read_catalog_table
from zimage_assets.metadata import markdown_table

REJECT_PREVIEW_ROWS = 25


class CatalogConfig(dg.Config):
    source: str = Field(default="", description="File path or s3://bucket/key; '' = ZIMAGE_CATALOG_SOURCE")
    format: str = Field(default="auto", description=f"One of {', '.join(FORMATS)}")
    column_mapping: dict[str, str] = Field(
        default_factory=dict, description="generic format: your column -> sku/title/category/description/..."
    )


@dg.asset(group_name="catalog", kinds={"pandas", "sql"})
def sku_catalog(
    context: dg.AssetExecutionContext,
    config: CatalogConfig,
    state_db: StateDB,
    catalog_source: CatalogSource,
) -> dg.MaterializeResult:
    """Every SKU of the catalog, normalised; rejected rows recorded with row, field and reason."""
    source = config.source or catalog_source.default_source
    try:
        data = catalog_source.read(source)
        parsed = parse_catalog(read_catalog_table(data, name=source), config.format, config.column_mapping or None)
    except (CatalogSourceError, CatalogFormatError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None

    ingest_id = hashlib.sha256(
        data + json.dumps([parsed.format, config.column_mapping], sort_keys=True).encode()
    ).hexdigest()
    rejects = parsed.rejects.to_dict("records")
    counts = state_db.record_ingest(
        ingest_id=ingest_id,
        source=source,
        fmt=parsed.format,
        rows_read=parsed.rows_read,
        skus=parsed.skus.to_dict("records"),
        rejects=rejects,
    )
    rejected_rows = len({r["row"] for r in rejects})
    if parsed.skus.empty:
        raise dg.Failure(
            description=f"{source}: none of its {parsed.rows_read} rows is usable; {rejected_rows} rejected "
            f"(first: {_first_reasons(rejects)}). Rejects are recorded under ingest {ingest_id[:12]}.",
            allow_retries=False,
        )
    context.log.info(
        f"{source} ({parsed.format}): {parsed.rows_read} rows, {len(parsed.skus)} SKUs accepted, "
        f"{rejected_rows} rows rejected; {counts['new']} new, {counts['changed']} changed"
    )
    return dg.MaterializeResult(
        metadata={
            "source": source,
            "format": parsed.format,
            "ingest_id": ingest_id,
            "rows_read": parsed.rows_read,
            "accepted": len(parsed.skus),
            "rejected_rows": rejected_rows,
            "new_skus": counts["new"],
            "changed_skus": counts["changed"],
            "unchanged_skus": counts["unchanged"],
            "skus_total": state_db.count_skus(),
            "rejects": dg.MetadataValue.md(
                markdown_table(rejects[:REJECT_PREVIEW_ROWS], ["row", "sku", "field", "reason"])
                + (f"\n\n{len(rejects) - REJECT_PREVIEW_ROWS} more in table catalog_rejects" if len(rejects) > REJECT_PREVIEW_ROWS else "")
            ),
        }
    )


def _first_reasons(rejects: list[dict], limit: int = 3) -> str:
    return "; ".join(f"row {r['row']} {r['field']}: {r['reason']}" for r in rejects[:limit]) or "none"
