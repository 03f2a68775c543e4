"""Finance exports: complete, checksummed, immutable, latest switched only when complete."""

import datetime as dt
import hashlib
import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from reports import exports
from reports.exports import (
    EXPORT_COLUMNS,
    ExportRefused,
    export_table,
    verify_export,
    write_export,
)


def _forecast(as_of="2026-11-30", n=3, scale=1.0):
    starts = pd.date_range(as_of, periods=n, freq="W-MON")
    return pd.DataFrame(
        {
            "as_of": pd.Timestamp(as_of).date(),
            "cadence": "weekly",
            "series_key": "total",
            "segment": "ALL",
            "region": "ALL",
            "horizon": range(1, n + 1),
            "period_start": starts.date,
            "period_end": (starts + pd.Timedelta(days=6)).date,
            "currency": "USD",
            "model": "ets",
            "point": [100.0 * scale * (i + 1) for i in range(n)],
            "lo80": 80.0,
            "hi80": 400.0,
            "lo95": 60.0,
            "hi95": 500.0,
            "run_id": "run-a",
            "generated_at": pd.Timestamp("2026-11-30 06:01:00"),
        }
    )


def test_export_is_complete_and_checksums_verify(tmp_path):
    table = export_table(_forecast(), dq_score=0.995)
    assert list(table.columns) == EXPORT_COLUMNS
    res = write_export(table, "weekly", "2026-11-30", "run-a", tmp_path, dq_score=0.995)
    assert res.created and res.version == 1
    assert res.path == tmp_path / "weekly" / "2026-11-30" / "v001"
    names = sorted(p.name for p in res.path.iterdir())
    assert names == ["forecast.csv", "forecast.parquet", "forecast.xlsx", "manifest.json"]
    man = json.loads((res.path / "manifest.json").read_text())
    for name, info in man["files"].items():
        assert hashlib.sha256((res.path / name).read_bytes()).hexdigest() == info["sha256"]
        assert info["rows"] == 3
    assert verify_export(res.path) == []
    pqt = pq.read_table(res.path / "forecast.parquet")
    assert pqt.column_names == EXPORT_COLUMNS
    assert pqt.num_rows == 3
    csv = pd.read_csv(res.path / "forecast.csv")
    assert list(csv.columns) == EXPORT_COLUMNS and csv["point"].tolist() == [100, 200, 300]
    xl = pd.read_excel(res.path / "forecast.xlsx", engine="openpyxl")
    assert list(xl.columns) == EXPORT_COLUMNS and len(xl) == 3
    assert csv["dq_score"].iloc[0] == pytest.approx(0.995)
    # latest points at the complete folder
    assert (tmp_path / "weekly" / "latest").resolve() == res.path.resolve()
    assert (tmp_path / "weekly" / "LATEST").read_text().strip() == "2026-11-30/v001"
    # tampering is detected
    os.chmod(res.path, 0o755)
    (res.path / "forecast.csv").write_text("x")
    assert verify_export(res.path) == ["forecast.csv checksum mismatch"]


def test_export_is_immutable_same_run_noop_other_run_new_version(tmp_path):
    t = export_table(_forecast(), 0.99)
    first = write_export(t, "weekly", "2026-11-30", "run-a", tmp_path)
    before = (first.path / "forecast.parquet").read_bytes()
    again = write_export(
        export_table(_forecast(scale=2), 0.99), "weekly", "2026-11-30", "run-a", tmp_path
    )
    assert not again.created and again.path == first.path
    assert (first.path / "forecast.parquet").read_bytes() == before  # not rewritten
    second = write_export(
        export_table(_forecast(scale=2), 0.99), "weekly", "2026-11-30", "run-b", tmp_path
    )
    assert second.created and second.version == 2 and second.path.name == "v002"
    assert (first.path / "forecast.parquet").read_bytes() == before
    assert (tmp_path / "weekly" / "latest").resolve() == second.path.resolve()
    # a backfill of an older as-of does not move latest back
    old = write_export(
        export_table(_forecast("2026-11-23"), 0.99), "weekly", "2026-11-23", "run-c", tmp_path
    )
    assert old.created
    assert (tmp_path / "weekly" / "latest").resolve() == second.path.resolve()


def test_latest_switched_only_after_complete_and_failure_leaves_nothing(tmp_path, monkeypatch):
    good = write_export(export_table(_forecast(), 0.99), "weekly", "2026-11-30", "run-a", tmp_path)
    seen = {}
    real = exports._write_files

    def failing(table, folder):
        real(table, folder)
        seen["latest_during_write"] = (tmp_path / "weekly" / "latest").resolve()
        raise OSError("disk full")

    monkeypatch.setattr(exports, "_write_files", failing)
    with pytest.raises(OSError, match="disk full"):
        write_export(
            export_table(_forecast("2026-12-07"), 0.99), "weekly", "2026-12-07", "run-b", tmp_path
        )
    assert seen["latest_during_write"] == good.path.resolve()
    assert (tmp_path / "weekly" / "latest").resolve() == good.path.resolve()
    leftovers = [p.name for p in (tmp_path / "weekly").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    assert not any((tmp_path / "weekly" / "2026-12-07").glob("v*"))


def test_latest_copied_as_a_folder_is_refused_with_a_clear_message(tmp_path):
    good = write_export(export_table(_forecast(), 0.99), "weekly", "2026-11-30", "run-a", tmp_path)
    latest = tmp_path / "weekly" / "latest"
    latest.unlink()  # what `cp -rL` / copytree(symlinks=False) of the exports folder leaves
    latest.mkdir()
    (latest / "forecast.csv").write_text("a copy\n")
    with pytest.raises(ExportRefused, match=r"latest is a folder, not the symlink") as info:
        write_export(
            export_table(_forecast("2026-12-07"), 0.99), "weekly", "2026-12-07", "run-b", tmp_path
        )
    assert "remove it, and rerun" in str(info.value)
    # refused before any work: no new version, no temp folder, the copy untouched
    assert not any((tmp_path / "weekly" / "2026-12-07").glob("v*"))
    assert not [p for p in (tmp_path / "weekly").iterdir() if p.name.startswith(".tmp")]
    assert (latest / "forecast.csv").read_text() == "a copy\n"
    # once removed as the message says, the export runs and recreates the symlink
    (latest / "forecast.csv").unlink()
    latest.rmdir()
    res = write_export(
        export_table(_forecast("2026-12-07"), 0.99), "weekly", "2026-12-07", "run-b", tmp_path
    )
    assert latest.is_symlink() and latest.resolve() == res.path.resolve() != good.path.resolve()


def test_export_refused_below_quality_gate(tmp_path):
    with pytest.raises(ExportRefused, match="97.50% is below the 98% gate"):
        write_export(
            export_table(_forecast(), 0.975),
            "weekly",
            "2026-11-30",
            "run-a",
            tmp_path,
            dq_score=0.975,
        )
    assert not (tmp_path / "weekly" / "2026-11-30").exists()


def test_generated_at_is_utc_in_every_format(tmp_path):
    res = write_export(export_table(_forecast(), 0.99), "weekly", "2026-11-30", "r", tmp_path)
    pqt = pq.read_table(res.path / "forecast.parquet")
    assert str(pqt.schema.field("generated_at").type) == "timestamp[us, tz=UTC]"
    assert pqt.column("generated_at")[0].as_py() == dt.datetime(2026, 11, 30, 6, 1, tzinfo=dt.UTC)
    assert pd.read_csv(res.path / "forecast.csv")["generated_at"][0] == "2026-11-30T06:01:00Z"
