"""Dagster layer: data-driven attribution (Markov removal effect, Shapley) over dbt's journeys.

One multi-asset writes both tables in one step (one DuckDB writer, one transaction):
``marts.attribution_data_driven`` (per touch and model) and ``marts.attribution_channel_effects``
(per channel and model). Upstream: the dbt model ``intermediate.int_opportunity_journeys``.
The per-touch relation is a view (see `assets.attribution.warehouse`); the channel table is a
table. The logic lives in `assets.attribution.warehouse` (plain DuckDB, testable without Dagster).
"""

from collections.abc import Iterator

import dagster as dg
import duckdb

from assets.attribution.warehouse import (
    CHANNEL_TABLE,
    JOURNEYS_TABLE,
    TOUCH_TABLE,
    DataDrivenSummary,
    build_data_driven,
)
from orchestration.settings import duckdb_config, paths

GROUP_NAME = "attribution"
ASSET_KINDS = {"python", "duckdb"}
JOURNEYS_KEY = dg.AssetKey(JOURNEYS_TABLE.split("."))
DATA_DRIVEN_KEY = dg.AssetKey(TOUCH_TABLE.split("."))
CHANNEL_EFFECTS_KEY = dg.AssetKey(CHANNEL_TABLE.split("."))

_TOUCH_COLUMNS = [
    ("opportunity_id", "varchar", "Salesforce Opportunity Id"),
    ("touchpoint_id", "varchar", "Marketing touchpoint id"),
    ("attribution_model", "varchar", "markov or shapley"),
    ("touch_position", "integer", "1-based position in the journey"),
    ("touch_count", "integer", "Touches in the journey"),
    ("occurred_at", "timestamp", "Touch time (UTC)"),
    ("campaign", "varchar", "Campaign"),
    ("touch_type", "varchar", "Kind of touch"),
    ("opportunity_created_date", "date", "Opportunity creation date"),
    ("opportunity_close_date", "date", "Close date"),
    ("channel", "varchar", "Marketing channel"),
    ("opportunity_status", "varchar", "open, won or lost"),
    ("is_won", "boolean", "Opportunity won"),
    ("amount_usd", "double", "Opportunity amount (USD)"),
    ("credit", "double", "Share of the opportunity (sums to 1 per opportunity and model)"),
    ("attributed_opportunities", "double", "= credit"),
    ("attributed_won_deals", "double", "credit when won"),
    ("attributed_pipeline_usd", "double", "credit * amount_usd"),
    ("attributed_bookings_usd", "double", "credit * amount_usd when won"),
]
_CHANNEL_COLUMNS = [
    ("attribution_model", "varchar", "markov or shapley"),
    ("channel", "varchar", "Marketing channel"),
    ("removal_effect", "double", "Markov: 1 - P(win without the channel) / P(win)"),
    ("value_removal_effect", "double", "Markov: the same on expected bookings"),
    ("visit_probability", "double", "Markov: P(a journey visits the channel)"),
    ("win_rate_with", "double", "Markov: P(won | visits the channel)"),
    ("win_rate_without", "double", "Markov: P(won | never visits it)"),
    ("odds_ratio", "double", "Markov: win odds with / without the channel (its effect)"),
    ("rate_contribution", "double", "Shapley value in the win-rate game (its effect)"),
    ("credited_won_deals", "double", "Won deals credited (sums to all won deals with touches)"),
    ("credited_bookings_usd", "double", "Bookings credited (sums to their bookings)"),
    ("won_deals_share", "double", "Share of credited won deals"),
    ("bookings_share", "double", "Share of credited bookings"),
]


def _spec(key: dg.AssetKey, columns: list[tuple[str, str, str]], description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        group_name=GROUP_NAME,
        kinds=ASSET_KINDS,
        deps=[JOURNEYS_KEY],
        description=description,
        metadata={
            "dagster/table_name": ".".join(key.path),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns]
            ),
        },
    )


SPECS = [
    _spec(
        DATA_DRIVEN_KEY,
        _TOUCH_COLUMNS,
        "Data-driven multi-touch attribution per touch (a view over the journeys and the "
        "fitted removal effects; materialised in the analysts' marts.duckdb): Markov "
        "removal-effect and Shapley credits (sum to 1 per opportunity and model) with credited "
        "pipeline and bookings. Same columns as marts.attribution_touchpoints (rule-based). "
        "See docs/ATTRIBUTION.md.",
    ),
    _spec(
        CHANNEL_EFFECTS_KEY,
        _CHANNEL_COLUMNS,
        "Fitted data-driven attribution per channel: Markov removal effects (exact, absorbing "
        "chain over closed opportunities) and Shapley values, with credited won deals and "
        "bookings. See docs/ATTRIBUTION.md.",
    ),
]


def _markdown(summary: DataDrivenSummary) -> str:
    lines = [
        "| model | channel | removal effect | odds ratio | won deals | bookings (USD) | share |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    table = summary.channel_table.sort_values(
        ["attribution_model", "credited_bookings_usd"], ascending=[True, False]
    )
    for row in table.itertuples(index=False):
        effect = "" if row.removal_effect != row.removal_effect else f"{row.removal_effect:.4f}"
        odds = "" if row.odds_ratio != row.odds_ratio else f"{row.odds_ratio:.2f}"
        lines.append(
            f"| {row.attribution_model} | {row.channel} | {effect} | {odds} | "
            f"{row.credited_won_deals:,.1f} | {row.credited_bookings_usd:,.0f} | "
            f"{row.bookings_share:.1%} |"
        )
    return "\n".join(lines)


@dg.multi_asset(name="attribution_data_driven", specs=SPECS)
def attribution_data_driven(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    """Fit Markov and Shapley on the journeys and write per-touch and per-channel tables."""
    warehouse = paths().warehouse
    context.log.info(f"data-driven attribution over {JOURNEYS_TABLE} in {warehouse}")
    con = duckdb.connect(str(warehouse), config=duckdb_config())
    try:
        summary = build_data_driven(con)
        touch_rows = 2 * summary.touches  # the view gives every touch one row per model
    except LookupError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    finally:
        con.close()
    context.log.info(
        f"{summary.journeys} journeys, {summary.touches} touches, P(win)="
        f"{summary.markov.conversion_probability:.4f}, {summary.seconds:.2f} s"
    )
    common = {
        "journeys": dg.MetadataValue.int(summary.journeys),
        "closed_journeys": dg.MetadataValue.int(summary.closed_journeys),
        "won_journeys": dg.MetadataValue.int(summary.won_journeys),
        "win_probability": dg.MetadataValue.float(summary.markov.conversion_probability),
        "seconds": dg.MetadataValue.float(round(summary.seconds, 3)),
        "channels": dg.MetadataValue.md(_markdown(summary)),
    }
    yield dg.MaterializeResult(
        asset_key=DATA_DRIVEN_KEY,
        metadata={**common, "dagster/row_count": dg.MetadataValue.int(int(touch_rows))},
    )
    yield dg.MaterializeResult(
        asset_key=CHANNEL_EFFECTS_KEY,
        metadata={
            **common,
            "dagster/row_count": dg.MetadataValue.int(len(summary.channel_table)),
        },
    )


attribution_assets: list[dg.AssetsDefinition] = [attribution_data_driven]
