"""Dagster layer of reports/: the published analyst database.

`publish_assets` is built lazily (its dependencies are read from the dbt manifest): use
`get_publish_assets()` or the module attribute `publish_assets`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from dagster import AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from orchestration.settings import paths

ANALYST_MARTS_KEY = AssetKey(["reports", "analyst_marts"])
REPORTS_GROUP = "reports"
PUBLISHED_SCHEMAS = ("marts",)
# Python-built tables that also live in the marts schema and are published with it.
PYTHON_MART_KEYS = [
    AssetKey(["marts", "attribution_data_driven"]),
    AssetKey(["marts", "attribution_channel_effects"]),
]


def mart_asset_keys() -> list[AssetKey]:
    """Keys of every dbt model built in the marts schema, read from the prepared manifest."""
    from assets.dbt.project import MANIFEST_PATH

    if not MANIFEST_PATH.exists():
        raise FileNotFoundError(
            f"{MANIFEST_PATH} is missing: run `make manifest` (python -m orchestration.manifest)"
        )
    manifest = json.loads(MANIFEST_PATH.read_text())
    return sorted(
        (
            AssetKey([node["schema"], node["name"]])
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["schema"] in PUBLISHED_SCHEMAS
        ),
        key=lambda key: key.to_user_string(),
    )


@functools.cache
def get_publish_assets() -> list[AssetsDefinition]:
    @asset(
        key=ANALYST_MARTS_KEY,
        group_name=REPORTS_GROUP,
        deps=[*mart_asset_keys(), *PYTHON_MART_KEYS],
        kinds={"duckdb"},
        description=(
            "The analysts' read-only copy of the marts (SALESOPS_HOME/marts.duckdb): the last "
            "published file copied, only the row delta of the tables whose content changed "
            "applied - for dbt's opportunity-keyed incremental marts the rows of the "
            "opportunities dbt rebuilt, unhashed; for attribution_data_driven the rows of the "
            "deals whose journeys dbt rebuilt (plus the Markov credits when the channel effects "
            "moved); for the others found by row hashes - (or the "
            "table rewritten when most of it changed), then swapped in "
            "atomically; open readers are never blocked (full rebuild when there is no usable "
            "previous copy or most rows changed)."
        ),
    )
    def analyst_marts(context) -> MaterializeResult:
        from reports.publish import publish_marts

        where = paths()
        result = publish_marts(where.warehouse, where.marts, PUBLISHED_SCHEMAS)
        rewritten, patched, keyed = set(result.rewritten), set(result.patched), set(result.keyed)
        written = {
            **dict.fromkeys(patched, "patched"),
            **dict.fromkeys(keyed, "patched by key"),
            **dict.fromkeys(rewritten, "rewritten"),
        }
        preview = "| table | rows | written |\n|---|---:|---|\n" + "\n".join(
            f"| {name} | {rows:,} | {written.get(name, '')} |"
            for name, rows in sorted(result.tables.items())
        )
        context.log.info(
            "published %d tables to %s (%s, %d rewritten, %d patched (%d by key): -%d +%d rows, "
            "%d rows hashed%s)",
            len(result.tables),
            result.marts_path,
            result.mode,
            len(rewritten),
            len(patched),
            len(keyed),
            result.rows_deleted,
            result.rows_inserted,
            result.hashed_rows,
            f"; {result.reason}" if result.reason else "",
        )
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(result.marts_path)),
                "tables": len(result.tables),
                "rows": result.total_rows,
                "size_mb": round(result.bytes / 1e6, 2),
                "seconds": round(result.seconds, 2),
                "mode": result.mode,
                "tables_rewritten": len(rewritten),
                "tables_patched": len(patched),
                "tables_patched_by_key": len(keyed),
                "rows_hashed": result.hashed_rows,
                "rows_deleted": result.rows_deleted,
                "rows_inserted": result.rows_inserted,
                "credits_patched": ", ".join(result.credits_patched),
                "rows_updated": result.rows_updated,
                "full_rebuild_reason": result.reason,
                "fingerprint_seconds": round(result.fingerprint_seconds, 2),
                "diff_seconds": round(result.diff_seconds, 2),
                "step_seconds": MetadataValue.json(result.step_seconds),
                "preview": MetadataValue.md(preview),
            }
        )

    return [analyst_marts]


def __getattr__(name: str) -> Any:
    if name == "publish_assets":
        return get_publish_assets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
