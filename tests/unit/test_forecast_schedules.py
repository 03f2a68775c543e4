"""Schedules evaluate to the right jobs and as-of partition keys."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import Definitions, build_schedule_context, define_asset_job

from forecasts.assets import all_assets
from orchestration.partitions import WEEKLY_PARTITIONS
from orchestration.schedules import MONTHLY_CRON, WEEKLY_CRON, build_schedules


def _defs():
    # partitioning is inferred from the selected (partitioned) assets
    wj = define_asset_job("weekly_job", selection=["forecasts/weekly_bookings_forecast"])
    mj = define_asset_job("monthly_job", selection=["forecasts/monthly_bookings_forecast"])
    weekly, monthly = build_schedules(wj, mj)
    defs = Definitions(assets=all_assets, jobs=[wj, mj], schedules=[weekly, monthly])
    return defs, weekly, monthly


def _tick(defs, sched, when):
    ctx = build_schedule_context(
        repository_def=defs.get_repository_def(), scheduled_execution_time=when
    )
    return sched.evaluate_tick(ctx).run_requests


def test_schedules_request_the_partition_of_their_own_date():
    defs, weekly, monthly = _defs()
    assert weekly.cron_schedule == WEEKLY_CRON == "0 6 * * 1"
    assert monthly.cron_schedule == MONTHLY_CRON == "0 6 1 * *"
    assert weekly.default_status.value == "RUNNING"
    assert monthly.default_status.value == "RUNNING"
    assert weekly.execution_timezone == "UTC"
    utc = ZoneInfo("UTC")
    (req,) = _tick(defs, weekly, dt.datetime(2026, 11, 30, 6, 0, tzinfo=utc))
    assert req.partition_key == "2026-11-30"  # a Monday: forecast as of that day
    assert weekly.job_name == "weekly_job"
    (req,) = _tick(defs, monthly, dt.datetime(2026, 12, 1, 6, 0, tzinfo=utc))
    assert req.partition_key == "2026-12-01"
    assert monthly.job_name == "monthly_job"
    # the requested key is a real partition of the job at that time
    assert "2026-11-30" in WEEKLY_PARTITIONS.get_partition_keys(
        current_time=dt.datetime(2026, 11, 30, 6)
    )
    assert defs.resolve_job_def("weekly_job").partitions_def == WEEKLY_PARTITIONS


def test_timezone_comes_from_env(monkeypatch):
    monkeypatch.setenv("SALESOPS_TIMEZONE", "Europe/Paris")
    defs, weekly, monthly = _defs()
    assert weekly.execution_timezone == "Europe/Paris"
    assert monthly.execution_timezone == "Europe/Paris"
    (req,) = _tick(defs, weekly, dt.datetime(2026, 11, 30, 6, tzinfo=ZoneInfo("Europe/Paris")))
    assert req.partition_key == "2026-11-30"
