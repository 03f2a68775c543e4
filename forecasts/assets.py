"""Dagster layer of forecasts/: partitioned forecast assets, the finance exports and the
executive report (keys under "reports"), all keyed by the as-of partition date.

Thin: every asset calls pure code (`forecasts.publish`, `reports.exports`,
`reports.executive_report`) and turns the result into metadata. The warehouse is opened and
closed inside each step (DuckDB single writer).
"""

import time

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)

from orchestration.partitions import MONTHLY_PARTITIONS, WEEKLY_PARTITIONS
from orchestration.settings import paths

FORECASTS_GROUP = "forecasts"
REPORTS_GROUP = "reports"
MART_DEPS = [
    AssetKey(["marts", "opportunities"]),
    AssetKey(["marts", "opportunity_history"]),
    AssetKey(["marts", "bookings_daily"]),
]
WEEKLY_FORECAST_KEY = AssetKey(["forecasts", "weekly_bookings_forecast"])
MONTHLY_FORECAST_KEY = AssetKey(["forecasts", "monthly_bookings_forecast"])
FORECAST_KEYS = {"weekly": WEEKLY_FORECAST_KEY, "monthly": MONTHLY_FORECAST_KEY}
EXPORT_KEYS = {c: AssetKey(["reports", f"finance_forecast_export_{c}"]) for c in FORECAST_KEYS}
REPORT_KEYS = {c: AssetKey(["reports", f"executive_report_{c}"]) for c in FORECAST_KEYS}
PARTITIONS: dict[str, PartitionsDefinition] = {
    "weekly": WEEKLY_PARTITIONS,
    "monthly": MONTHLY_PARTITIONS,
}


def _forecast_asset(cadence: str):
    @asset(
        key=FORECAST_KEYS[cadence],
        group_name=FORECASTS_GROUP,
        kinds={"statsmodels", "duckdb"},
        deps=MART_DEPS,
        partitions_def=PARTITIONS[cadence],
        description=(
            f"{cadence.title()} closed-won bookings forecast (total, by segment, by region) as "
            "of the partition date: seasonal naive / ETS / ARIMA / pipeline-weighted candidates "
            "picked by rolling-origin backtest, reconciled; writes forecasts.forecasts and the "
            "forecasts.ledger (rerun replaces the partition's rows)."
        ),
    )
    def _forecast(context: AssetExecutionContext) -> MaterializeResult:
        from forecasts.publish import forecast_markdown, run_forecast_partition

        res = run_forecast_partition(
            cadence, context.partition_key, context.run.run_id, paths().warehouse
        )
        acc = res.run.accuracy()
        tot = acc[acc["series_key"] == "total"].set_index("horizon")["accuracy"]
        meta = {
            "as_of": context.partition_key,
            "rows": len(res.table),
            "accuracy": MetadataValue.float(res.backtest_accuracy),
            "forecast_total_next_period": MetadataValue.float(
                float(
                    res.table[(res.table["series_key"] == "total") & (res.table["horizon"] == 1)][
                        "point"
                    ].sum()
                )
            ),
            "seconds": MetadataValue.float(round(res.timings["total_s"], 2)),
            "inputs_seconds": MetadataValue.float(round(res.timings["inputs_s"], 2)),
            "model_fits": res.run.timings["fits"],
            "fits_reused": res.run.timings["cached"],
            "fit_processes": res.run.timings["fit_workers"],
            "preview": MetadataValue.md(forecast_markdown(res)),
        }
        for h in (1, int(tot.index.max()) if len(tot) else 1):
            if h in tot.index:
                meta[f"backtest_accuracy_h{h}"] = MetadataValue.float(float(tot[h]))
        led = res.ledger_scores
        if not led.empty:
            meta["ledger_accuracy_h1"] = MetadataValue.float(
                float(led[led["horizon"] == 1]["accuracy"].iloc[0])
                if (led["horizon"] == 1).any()
                else float("nan")
            )
        return MaterializeResult(metadata=meta)

    return _forecast


def _export_asset(cadence: str):
    @asset(
        key=EXPORT_KEYS[cadence],
        group_name=REPORTS_GROUP,
        kinds={"parquet", "csv", "excel"},
        deps=[FORECAST_KEYS[cadence]],
        partitions_def=PARTITIONS[cadence],
        description=(
            f"Finance export of the {cadence} forecast: Parquet, CSV, XLSX and manifest.json "
            f"under exports/forecasts/{cadence}/<as_of>/vNNN/ (one immutable version per run; "
            "`latest` switched after completion). Refused when the data-quality score < 98%."
        ),
    )
    def _export(context: AssetExecutionContext) -> MaterializeResult:
        from forecasts.store import connect, latest_quality_score, read_partition
        from reports.exports import ExportRefused, export_table, write_export

        t0 = time.monotonic()
        with connect(paths().warehouse, read_only=True) as con:
            table = read_partition(con, "forecasts", cadence, context.partition_key)
            dq = latest_quality_score(con)
        if table.empty:
            raise Failure(
                f"no {cadence} forecast rows for {context.partition_key}: "
                "materialize the forecast partition first"
            )
        try:
            res = write_export(
                export_table(table, dq),
                cadence,
                context.partition_key,
                context.run.run_id,
                paths().exports / "forecasts",
                dq_score=dq,
            )
        except ExportRefused as exc:
            raise Failure(str(exc)) from None
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(res.path)),
                "version": res.version,
                "created": res.created,
                "rows": res.manifest["rows"],
                "dq_score": MetadataValue.float(float(dq) if dq is not None else float("nan")),
                "files": MetadataValue.json(res.manifest["files"]),
                "seconds": MetadataValue.float(round(time.monotonic() - t0, 2)),
            }
        )

    return _export


def _report_asset(cadence: str):
    @asset(
        key=REPORT_KEYS[cadence],
        group_name=REPORTS_GROUP,
        kinds={"html"},
        deps=[FORECAST_KEYS[cadence]],
        partitions_def=PARTITIONS[cadence],
        description=(
            f"Executive {cadence} forecast report (HTML under reports/executive/): actual vs "
            "forecast with intervals, accuracy trend, pipeline coverage, top movements."
        ),
    )
    def _report(context: AssetExecutionContext) -> MaterializeResult:
        from forecasts.store import connect
        from reports.executive_report import (
            load_report_data,
            render_markdown,
            summary,
            write_report,
        )

        # built inside DuckDB: only the report's own rows leave the warehouse
        with connect(paths().warehouse, read_only=True) as con:
            data = load_report_data(con, cadence, context.partition_key)
        path = write_report(data, paths().reports / "executive")
        s = summary(data)
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(path)),
                "pipeline_coverage": MetadataValue.float(float(s["coverage"])),
                "summary": MetadataValue.md(render_markdown(data)),
            }
        )

    return _report


weekly_bookings_forecast = _forecast_asset("weekly")
monthly_bookings_forecast = _forecast_asset("monthly")
weekly_finance_export = _export_asset("weekly")
monthly_finance_export = _export_asset("monthly")
weekly_executive_report = _report_asset("weekly")
monthly_executive_report = _report_asset("monthly")

forecast_assets = [weekly_bookings_forecast, monthly_bookings_forecast]
report_assets = [
    weekly_finance_export,
    monthly_finance_export,
    weekly_executive_report,
    monthly_executive_report,
]
all_assets = forecast_assets + report_assets
