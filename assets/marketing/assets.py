"""Dagster layer: one step loads the marketing landing folder into `marketing.*` tables.

A single multi-asset owns both keys so the two loads share one DuckDB connection (DuckDB allows
one writer per file) and either key can be materialized alone (`can_subset`). Good files load
and are reported; if any file was unreadable the step then fails naming every bad file.
"""

# No `from __future__ import annotations` here: Dagster resolves the config class annotation.
from collections.abc import Iterator

import dagster as dg

from assets.marketing import contract as c
from assets.marketing.loader import (
    KindReport,
    MarketingLoadError,
    load_landing,
    raise_for_failures,
)
from assets.marketing.summary import files_markdown, preview_markdown, report_metadata
from orchestration.settings import paths

GROUP_NAME = "marketing"
# Steps that write the DuckDB warehouse share this pool; a limit of 1 serializes writers.
WAREHOUSE_POOL = "warehouse"
ASSET_KINDS = {"duckdb", "csv", "parquet"}
AD_SPEND_KEY = dg.AssetKey([c.SCHEMA, c.AD_SPEND])
TOUCHPOINTS_KEY = dg.AssetKey([c.SCHEMA, c.TOUCHPOINTS])
KEYS_BY_KIND = {c.AD_SPEND: AD_SPEND_KEY, c.TOUCHPOINTS: TOUCHPOINTS_KEY}

_COLUMNS = {
    c.AD_SPEND: [
        ("date", "date", "Spend date"),
        ("channel", "varchar", "Marketing channel (fixed set)"),
        ("campaign", "varchar", "Campaign name"),
        ("spend", "decimal(18,4)", "Spend in `currency`, >= 0"),
        ("currency", "varchar", "ISO 4217 code"),
        ("impressions", "bigint", "Optional"),
        ("clicks", "bigint", "Optional"),
    ],
    c.TOUCHPOINTS: [
        ("touchpoint_id", "varchar", "Unique across all files"),
        ("occurred_at", "timestamp", "UTC"),
        ("channel", "varchar", "Marketing channel (fixed set)"),
        ("campaign", "varchar", "Campaign name"),
        ("touch_type", "varchar", "web_visit, form_fill, webinar, ad_click, email_click, event"),
        ("email_hash", "varchar", "sha256(salt || lower(trim(email))); no plaintext email"),
        ("utm_source", "varchar", "Optional"),
        ("utm_medium", "varchar", "Optional"),
        ("utm_campaign", "varchar", "Optional"),
    ],
}
_LINEAGE_COLUMNS = [
    ("source_file", "varchar", "<kind>/<landing file name>"),
    ("source_line", "bigint", "Line in the file (CSV header = 1) or Parquet row number"),
    ("loaded_at", "timestamp", "UTC time of the load"),
]


def _spec(kind: str) -> dg.AssetSpec:
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=desc)
            for name, type_, desc in _COLUMNS[kind] + _LINEAGE_COLUMNS
        ]
    )
    return dg.AssetSpec(
        KEYS_BY_KIND[kind],
        group_name=GROUP_NAME,
        kinds=ASSET_KINDS,
        description=(
            f"Marketing {kind} files from the landing folder "
            f"(`$SALESOPS_HOME/landing/marketing/{kind}/`, CSV or Parquet) loaded into DuckDB "
            f"`{c.SCHEMA}.{kind}`; bad rows go to `{c.SCHEMA}.{c.QUARANTINE_TABLE}`. "
            "See docs/MARKETING.md."
        ),
        metadata={"dagster/column_schema": schema, "dagster/table_name": f"{c.SCHEMA}.{kind}"},
        skippable=True,
    )


class MarketingLoadConfig(dg.Config):
    force_reload: bool = False
    """Reload every landing file, even those already loaded with the same checksum."""


def _metadata(report: KindReport) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {}
    for name, value in report_metadata(report).items():
        if isinstance(value, (dict, list)):
            meta[name] = dg.MetadataValue.json(value)
        elif isinstance(value, bool):
            meta[name] = dg.MetadataValue.bool(value)
        elif isinstance(value, str):
            meta[name] = dg.MetadataValue.text(value)
        elif isinstance(value, float):
            meta[name] = dg.MetadataValue.float(value)
        else:
            meta[name] = dg.MetadataValue.int(value)
    meta["dagster/row_count"] = dg.MetadataValue.int(report.table_rows)
    meta["files"] = dg.MetadataValue.md(files_markdown(report))
    meta["preview"] = dg.MetadataValue.md(preview_markdown(report))
    return meta


@dg.multi_asset(
    name="marketing_landing_files",
    specs=[_spec(kind) for kind in c.KINDS],
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def marketing_landing_files(
    context: dg.AssetExecutionContext, config: MarketingLoadConfig
) -> Iterator[dg.MaterializeResult]:
    """Load new and changed marketing landing files; fail afterwards if any file was bad."""
    selected = [kind for kind in c.KINDS if KEYS_BY_KIND[kind] in context.selected_asset_keys]
    where = paths()
    context.log.info(f"loading {', '.join(selected)} from {where.landing_marketing}")
    reports = load_landing(
        where.warehouse, where.landing_marketing, selected, force=config.force_reload
    )
    for kind, report in reports.items():
        yield dg.MaterializeResult(asset_key=KEYS_BY_KIND[kind], metadata=_metadata(report))
    try:
        raise_for_failures(reports.values())
    except MarketingLoadError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


marketing_assets: list[dg.AssetsDefinition] = [marketing_landing_files]
