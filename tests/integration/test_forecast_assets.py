"""Forecast, export and report assets in real Dagster runs on a temp DuckDB warehouse whose
marts are filled from the synthetic history (no dbt needed)."""

import datetime as dt

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from forecasts import engine
from forecasts.assets import (
    monthly_bookings_forecast,
    monthly_executive_report,
    monthly_finance_export,
)
from forecasts.series import known_at
from forecasts.synthetic import bookings_daily, synthetic_history
from reports.exports import verify_export

TINY = engine.get_config(
    "monthly",
    horizon=3,
    pipeline_horizon=2,
    backtest_origins=2,
    calibration_origins=4,
    bands=((1, 1), (2, 3)),
    ets_configs=(("add", True, "add"),),
    arima_orders=((1, 0, 0),),
)


def _load_marts(path, history):
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        h = history.copy()
        h["close_date"] = h["close_date"].dt.date
        con.register("h", h)
        con.execute("CREATE OR REPLACE TABLE marts.opportunity_history AS SELECT * FROM h")
        con.register("b", bookings_daily(history))
        con.execute("CREATE OR REPLACE TABLE marts.bookings_daily AS SELECT * FROM b")
        con.execute(
            "CREATE OR REPLACE TABLE marts.opportunities AS SELECT DISTINCT opportunity_id FROM h"
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def full_history():
    h, _ = synthetic_history(start="2023-01-02", end="2025-09-01", seed=5, deals_per_day=5)
    return h


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    monkeypatch.delenv("SALESOPS_FORECAST_PROFILE", raising=False)
    monkeypatch.setitem(engine.CONFIGS, "monthly", TINY)
    return tmp_path


def _run(assets, key, instance):
    return materialize(assets, partition_key=key, instance=instance, raise_on_error=False)


def _rows(path, sql, params=()):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


def test_partitioned_forecast_export_report_end_to_end(home, full_history):
    wh = home / "warehouse.duckdb"
    instance = DagsterInstance.ephemeral()
    # the warehouse as it was on 2025-07-01
    _load_marts(wh, known_at(full_history, "2025-07-01"))
    assets = [monthly_bookings_forecast, monthly_finance_export, monthly_executive_report]
    r1 = _run(assets, "2025-07-01", instance)
    assert r1.success
    f1 = _rows(
        wh,
        "SELECT * FROM forecasts.forecasts WHERE as_of = DATE '2025-07-01' "
        "ORDER BY series_key, horizon",
    )
    assert len(f1) == 7 * 3  # total + 3 segments + 3 regions, 3 months
    assert set(f1["run_id"]) == {r1.run_id}
    led = _rows(wh, "SELECT * FROM forecasts.ledger")
    assert len(led) == 21 and set(led["as_of"].astype(str)) == {"2025-07-01"}
    mats = r1.asset_materializations_for_node(monthly_bookings_forecast.op.name)
    meta = mats[0].metadata
    assert 0.0 < meta["accuracy"].value <= 1.0
    assert "| period | series |" in meta["preview"].value

    # export: all files, verified, latest switched
    exp = home / "exports" / "forecasts" / "monthly"
    assert verify_export(exp / "2025-07-01" / "v001") == []
    assert (exp / "latest").resolve() == (exp / "2025-07-01" / "v001").resolve()
    csv = pd.read_csv(exp / "2025-07-01" / "v001" / "forecast.csv")
    assert len(csv) == 21 and set(csv["run_id"]) == {r1.run_id}
    # executive report
    html = (home / "reports" / "executive" / "monthly_2025-07-01.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")

    # later data arrives; a backfill of an older partition and a rerun of 2025-07-01
    _load_marts(wh, full_history)
    r0 = _run([monthly_bookings_forecast], "2025-06-01", instance)
    assert r0.success
    r2 = _run(assets, "2025-07-01", instance)
    assert r2.success
    f2 = _rows(
        wh,
        "SELECT * FROM forecasts.forecasts WHERE as_of = DATE '2025-07-01' "
        "ORDER BY series_key, horizon",
    )
    # replaced, not duplicated; values reproduced exactly despite the appended data
    assert len(f2) == 21 and set(f2["run_id"]) == {r2.run_id}
    cols = ["series_key", "horizon", "model", "point", "lo80", "hi80", "lo95", "hi95"]
    pd.testing.assert_frame_equal(f1[cols], f2[cols])
    led = _rows(wh, "SELECT as_of, count(*) AS n FROM forecasts.ledger GROUP BY 1 ORDER BY 1")
    assert led["n"].tolist() == [21, 21]
    # the second run exported a new immutable version; v001 untouched
    assert verify_export(exp / "2025-07-01" / "v001") == []
    assert (exp / "latest").resolve() == (exp / "2025-07-01" / "v002").resolve()

    # quality below the gate: the export refuses, nothing new is written
    con = duckdb.connect(str(wh))
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute(
        "CREATE TABLE quality.table_scores (run_id VARCHAR, checked_at TIMESTAMP, "
        '"rows" BIGINT, failed_rows BIGINT)'
    )
    con.execute(
        "INSERT INTO quality.table_scores VALUES ('q1', ?, 1000, 30)", [dt.datetime(2025, 7, 1)]
    )
    con.close()
    r3 = _run([monthly_finance_export], "2025-07-01", instance)
    assert not r3.success
    failure = [e for e in r3.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "below the 98% gate" in str(failure.event_specific_data.error)
    assert not (exp / "2025-07-01" / "v003").exists()
