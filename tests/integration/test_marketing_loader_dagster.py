"""Dagster materialization of the two marketing assets against a temp SALESOPS_HOME."""

import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.marketing import marketing_assets
from assets.marketing.assets import AD_SPEND_KEY, TOUCHPOINTS_KEY

SALT = "integration-salt"
TP = [
    "touchpoint_id,occurred_at,channel,campaign,touch_type,email",
    "tp-1,2024-03-01T10:00:00+01:00,webinar,Launch,webinar,ann@example.com",
    "tp-2,2024-03-01T11:00:00Z,paid_search,Launch,ad_click,bob@example.com",
    "tp-3,2024-03-01T12:00:00Z,fax,Launch,ad_click,bob@example.com",
]
AD = [
    "date,channel,campaign,spend,currency",
    "2024-03-01,webinar,Launch,250.00,USD",
    "2024-03-01,paid_search,Launch,-1,USD",
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    monkeypatch.setenv("SALESOPS_EMAIL_SALT", SALT)
    for kind, lines in (("touchpoints", TP), ("ad_spend", AD)):
        folder = tmp_path / "landing" / "marketing" / kind
        folder.mkdir(parents=True)
        (folder / "2024-03.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def materializations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {
        event.materialization.asset_key: {
            k: v.value for k, v in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def test_materialize_both_assets_then_rerun_skips(home: Path) -> None:
    (assets_def,) = marketing_assets
    assert assets_def.keys == {AD_SPEND_KEY, TOUCHPOINTS_KEY}
    for key in assets_def.keys:
        spec = assets_def.specs_by_key[key]
        assert spec.group_name == "marketing"
        assert spec.kinds == {"duckdb", "csv", "parquet"}

    result = dg.materialize(marketing_assets)
    assert result.success
    meta = materializations(result)
    assert meta[TOUCHPOINTS_KEY]["rows_read"] == 3
    assert meta[TOUCHPOINTS_KEY]["rows_loaded"] == 2
    assert meta[TOUCHPOINTS_KEY]["rows_quarantined"] == 1
    assert meta[TOUCHPOINTS_KEY]["quarantine_reasons"] == {"unknown_channel": 1}
    assert meta[TOUCHPOINTS_KEY]["dagster/row_count"] == 2
    assert "tp-1" in meta[TOUCHPOINTS_KEY]["preview"]
    assert meta[AD_SPEND_KEY]["quarantine_reasons"] == {"negative_spend": 1}
    assert meta[AD_SPEND_KEY]["files_loaded"] == 1

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        hashes = con.execute("SELECT email_hash FROM marketing.touchpoints ORDER BY 1").fetchall()
    expected = sorted(
        hashlib.sha256(f"{SALT}{e}".encode()).hexdigest()
        for e in ("ann@example.com", "bob@example.com")
    )
    assert [h for (h,) in hashes] == expected

    again = materializations(dg.materialize(marketing_assets))
    assert again[TOUCHPOINTS_KEY]["files_skipped"] == 1
    assert again[TOUCHPOINTS_KEY]["rows_read"] == 0
    assert again[TOUCHPOINTS_KEY]["dagster/row_count"] == 2


def test_subset_materializes_only_the_selected_key(home: Path) -> None:
    result = dg.materialize(marketing_assets, selection=[TOUCHPOINTS_KEY])
    assert result.success
    assert set(materializations(result)) == {TOUCHPOINTS_KEY}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marketing.ad_spend").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM marketing.touchpoints").fetchone() == (2,)


def test_bad_file_fails_the_run_after_loading_good_files(home: Path) -> None:
    bad = home / "landing" / "marketing" / "touchpoints" / "2024-04.csv"
    bad.write_text("touchpoint_id,occurred_at,channel\nx,2024-04-01T00:00:00Z,email\n")
    result = dg.materialize(marketing_assets, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "touchpoints/2024-04.csv" in message and "missing required column(s)" in message
    # The good files of both kinds were loaded and reported before the step failed.
    meta = materializations(result)
    assert meta[TOUCHPOINTS_KEY]["rows_loaded"] == 2
    assert meta[TOUCHPOINTS_KEY]["files_failed"] == 1
    assert meta[AD_SPEND_KEY]["rows_loaded"] == 1
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        files = con.execute("SELECT file FROM marketing.loaded_files ORDER BY 1").fetchall()
    assert files == [("ad_spend/2024-03.csv",), ("touchpoints/2024-03.csv",)]
