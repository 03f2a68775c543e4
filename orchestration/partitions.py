"""Forecast partitions, keyed by the as-of date (the Monday / 1st the forecast is made on).

A partition `2026-11-30` of the weekly forecast uses only data recorded before
2026-11-30 00:00 UTC and forecasts the weeks starting 2026-11-30 onwards. `end_offset=1` makes
the current week/month a valid partition, so the Monday 06:00 schedule can run it.
First partition: env SALESOPS_FORECAST_START (default 2025-01-06); timezone SALESOPS_TIMEZONE.
"""

from __future__ import annotations

import os

import pandas as pd
from dagster import MonthlyPartitionsDefinition, WeeklyPartitionsDefinition

DEFAULT_START = "2025-01-06"


def timezone() -> str:
    return os.environ.get("SALESOPS_TIMEZONE", "UTC")


def _start() -> pd.Timestamp:
    return pd.Timestamp(os.environ.get("SALESOPS_FORECAST_START", DEFAULT_START))


def weekly_partitions() -> WeeklyPartitionsDefinition:
    start = _start()
    start = start - pd.Timedelta(days=start.day_of_week)  # a Monday
    return WeeklyPartitionsDefinition(
        start_date=start.strftime("%Y-%m-%d"), day_offset=1, timezone=timezone(), end_offset=1
    )


def monthly_partitions() -> MonthlyPartitionsDefinition:
    return MonthlyPartitionsDefinition(
        start_date=_start().replace(day=1).strftime("%Y-%m-%d"),
        timezone=timezone(),
        end_offset=1,
    )


WEEKLY_PARTITIONS = weekly_partitions()
MONTHLY_PARTITIONS = monthly_partitions()
