"""Schedules: weekly (Monday 06:00) and monthly (1st of the month 06:00), in SALESOPS_TIMEZONE
(default UTC), running by default.

The jobs are defined by the integrator in `orchestration/jobs.py` and passed in; they must be
partitioned with `orchestration.partitions.WEEKLY_PARTITIONS` / `MONTHLY_PARTITIONS` (Dagster
infers that from the selected partitioned forecast assets). Each tick requests the partition
keyed by its own date: the Monday 2026-11-30 06:00 tick runs partition "2026-11-30", a forecast
as of 2026-11-30 00:00 that uses the weeks up to Sunday 2026-11-29.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from orchestration.partitions import timezone

WEEKLY_SCHEDULE = "weekly_pipeline_schedule"
MONTHLY_SCHEDULE = "monthly_forecast_schedule"
WEEKLY_CRON = "0 6 * * 1"
MONTHLY_CRON = "0 6 1 * *"


def weekly_partition_key(when: dt.datetime) -> str:
    """The Monday of the week containing `when` (in `when`'s own timezone)."""
    day = when.date()
    return (day - dt.timedelta(days=day.weekday())).isoformat()


def monthly_partition_key(when: dt.datetime) -> str:
    return when.date().replace(day=1).isoformat()


def build_schedules(weekly_job, monthly_job) -> list[ScheduleDefinition]:
    tz = timezone()

    @schedule(
        name=WEEKLY_SCHEDULE,
        job=weekly_job,
        cron_schedule=WEEKLY_CRON,
        execution_timezone=tz,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Monday 06:00: full pipeline and the weekly forecast partition as of today.",
    )
    def weekly(context: ScheduleEvaluationContext) -> RunRequest:
        key = weekly_partition_key(context.scheduled_execution_time)
        return RunRequest(
            run_key=f"weekly-{key}",
            partition_key=key,
            tags={"salesops/as_of": key, "salesops/cadence": "weekly"},
        )

    @schedule(
        name=MONTHLY_SCHEDULE,
        job=monthly_job,
        cron_schedule=MONTHLY_CRON,
        execution_timezone=tz,
        default_status=DefaultScheduleStatus.RUNNING,
        description="1st of the month 06:00: monthly forecast, export and executive report.",
    )
    def monthly(context: ScheduleEvaluationContext) -> RunRequest:
        key = monthly_partition_key(context.scheduled_execution_time)
        return RunRequest(
            run_key=f"monthly-{key}",
            partition_key=key,
            tags={"salesops/as_of": key, "salesops/cadence": "monthly"},
        )

    return [weekly, monthly]
