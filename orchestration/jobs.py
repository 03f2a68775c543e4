"""Jobs: the weekly pipeline and the monthly forecast, both refreshing everything upstream.

Both jobs re-run extraction, the quality gate, dbt and attribution before forecasting, so a forecast
is never built on last week's data; the run queue (dagster.yaml) serializes them when both fire on
the same morning. Partition keys are the forecast as-of dates (orchestration/partitions.py);
Dagster infers each job's partitions from its partitioned forecast assets.
"""

from __future__ import annotations

from datetime import datetime

from dagster import AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from forecasts.assets import EXPORT_KEYS, MONTHLY_FORECAST_KEY, REPORT_KEYS, WEEKLY_FORECAST_KEY

WEEKLY_JOB = "weekly_pipeline"
MONTHLY_JOB = "monthly_forecast"

CADENCE_KEYS = {
    "weekly": [WEEKLY_FORECAST_KEY, EXPORT_KEYS["weekly"], REPORT_KEYS["weekly"]],
    "monthly": [MONTHLY_FORECAST_KEY, EXPORT_KEYS["monthly"], REPORT_KEYS["monthly"]],
}


def build_jobs() -> dict[str, UnresolvedAssetJobDefinition]:
    weekly_only = AssetSelection.assets(*CADENCE_KEYS["weekly"])
    monthly_only = AssetSelection.assets(*CADENCE_KEYS["monthly"])
    return {
        WEEKLY_JOB: define_asset_job(
            WEEKLY_JOB,
            selection=AssetSelection.all() - monthly_only,
            description="Extract, gate, build marts and attribution, publish the analysts' copy, "
            "forecast the coming weeks and export for finance.",
        ),
        MONTHLY_JOB: define_asset_job(
            MONTHLY_JOB,
            selection=AssetSelection.all() - weekly_only,
            description="Everything the weekly job refreshes, then the monthly forecast, its "
            "finance export and the executive report.",
        ),
    }


def default_partition_key(job_name: str, now: datetime) -> str:
    """The newest partition of a job as of `now`: the current week's Monday / month's 1st."""
    from orchestration.schedules import monthly_partition_key, weekly_partition_key

    return weekly_partition_key(now) if job_name == WEEKLY_JOB else monthly_partition_key(now)
