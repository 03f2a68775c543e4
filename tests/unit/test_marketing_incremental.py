"""Incremental marketing loads: stat-based skips, re-hash on a new stat, summary reuse.

A file's size and mtime are recorded beside its checksum; an unchanged stat skips the file
without reading it. Timestamps are set with os.utime so each case is deterministic.
"""

import hashlib
import os
import time
from pathlib import Path

import duckdb
import pytest

import assets.marketing.loader as loader_module
from assets.marketing.loader import LOADED, REPLACED, SKIPPED, load_landing
from assets.marketing.summary import report_metadata

SALT = "incremental-salt"
TP_HEADER = "touchpoint_id,occurred_at,channel,campaign,touch_type,email"
AD_HEADER = "date,channel,campaign,spend,currency"
HOUR_NS = 3600 * 10**9


def tp_rows(prefix: str, n: int, channel: str = "email") -> list[str]:
    return [
        f"{prefix}-{i},2024-03-01T10:00:00Z,{channel},Spring,email_click,p{i}@example.com"
        for i in range(n)
    ]


def write(home: Path, kind: str, name: str, lines: list[str], age_hours: float = 1) -> Path:
    folder = home / "landing" / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    set_mtime(path, time.time_ns() - int(age_hours * HOUR_NS))
    return path


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def load(home: Path, **kwargs):
    return load_landing(home / "warehouse.duckdb", home / "landing", salt=SALT, **kwargs)


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def statuses(reports) -> dict[str, str]:
    return {f.file: f.status for r in reports.values() for f in r.files}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "landing").mkdir()
    return tmp_path


def test_unchanged_file_is_skipped_without_hashing(home: Path, monkeypatch) -> None:
    write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 5))
    write(home, "ad_spend", "a.csv", [AD_HEADER, "2024-03-01,email,S,1,USD"])
    first = load(home)
    assert set(statuses(first).values()) == {LOADED}
    recorded = query(home, "SELECT file, size_bytes, mtime_ns FROM marketing.loaded_files")
    for file, size, mtime_ns in recorded:
        stat = (home / "landing" / file).stat()
        assert (size, mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    hashed: list[Path] = []

    def refuse(path: Path, *args, **kwargs) -> str:
        hashed.append(path)
        raise AssertionError("hashed")

    monkeypatch.setattr(loader_module, "file_checksum", refuse)
    second = load(home)
    assert hashed == []
    assert set(statuses(second).values()) == {SKIPPED}
    assert all(f.checksum is None for r in second.values() for f in r.files)
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(5,)]


def test_same_size_new_content_reloads_when_mtime_changes(home: Path) -> None:
    path = write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 4))
    load(home)
    size = path.stat().st_size
    # "Spring" -> "Summer": new bytes, same size; the mtime moves (still in the past).
    rewritten = [TP_HEADER] + [r.replace(",Spring,", ",Summer,") for r in tp_rows("a", 4)]
    path.write_text("\n".join(rewritten) + "\n")
    assert path.stat().st_size == size
    set_mtime(path, time.time_ns() - HOUR_NS // 2)
    reports = load(home)
    assert statuses(reports) == {"touchpoints/a.csv": REPLACED}
    assert query(home, "SELECT DISTINCT campaign FROM marketing.touchpoints") == [("Summer",)]
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(4,)]
    assert query(home, "SELECT checksum, size_bytes FROM marketing.loaded_files") == [
        (hashlib.sha256(path.read_bytes()).hexdigest(), size)
    ]


def test_touched_file_is_hashed_once_not_reloaded_then_skipped_on_stat(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 3), age_hours=2)
    load(home)
    (loaded_at,) = query(home, "SELECT loaded_at FROM marketing.loaded_files")[0]
    new_mtime = time.time_ns() - HOUR_NS
    set_mtime(path, new_mtime)  # same bytes, new mtime (e.g. copied again)
    calls: list[Path] = []
    real = loader_module.file_checksum
    monkeypatch.setattr(
        loader_module, "file_checksum", lambda p, *a: calls.append(p) or real(p, *a)
    )
    reports = load(home)
    assert statuses(reports) == {"touchpoints/a.csv": SKIPPED}
    assert calls == [path]  # hashed because the stat changed; same checksum: not reloaded
    assert query(home, "SELECT mtime_ns, loaded_at FROM marketing.loaded_files") == [
        (new_mtime, loaded_at)
    ]
    load(home)
    assert calls == [path]  # the new stat was recorded: no second hash


def test_file_modified_just_before_the_run_is_hashed_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh mtime may not change on a same-second rewrite: it is not trusted."""
    path = write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 3), age_hours=0)
    load(home)
    assert query(home, "SELECT mtime_ns FROM marketing.loaded_files") == [(None,)]
    calls: list[Path] = []
    real = loader_module.file_checksum
    monkeypatch.setattr(
        loader_module, "file_checksum", lambda p, *a: calls.append(p) or real(p, *a)
    )
    assert statuses(load(home)) == {"touchpoints/a.csv": SKIPPED}
    assert calls == [path]


def test_force_reloads_even_with_an_unchanged_stat(home: Path) -> None:
    write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 3))
    load(home)
    assert statuses(load(home, force=True)) == {"touchpoints/a.csv": REPLACED}
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(3,)]


def test_loaded_files_without_mtime_column_is_migrated(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse written by the previous loader (no mtime_ns column) keeps working: the file
    is hashed once (same checksum: skipped), its stat recorded, then skipped without hashing."""
    path = write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 3))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA marketing")
        con.execute(
            "CREATE TABLE marketing.loaded_files (file VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
            "checksum VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, rows_read BIGINT NOT NULL, "
            "rows_loaded BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL, "
            "loaded_at TIMESTAMP NOT NULL)"
        )
        con.execute(
            "INSERT INTO marketing.loaded_files VALUES "
            "('touchpoints/a.csv', 'touchpoints', ?, ?, 3, 3, 0, TIMESTAMP '2024-03-02')",
            [digest, path.stat().st_size],
        )
    calls: list[Path] = []
    real = loader_module.file_checksum
    monkeypatch.setattr(
        loader_module, "file_checksum", lambda p, *a: calls.append(p) or real(p, *a)
    )
    assert statuses(load(home)) == {"touchpoints/a.csv": SKIPPED}
    assert calls == [path]
    assert query(home, "SELECT mtime_ns FROM marketing.loaded_files") == [
        (path.stat().st_mtime_ns,)
    ]
    assert statuses(load(home)) == {"touchpoints/a.csv": SKIPPED}
    assert calls == [path]
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(0,)]  # not reloaded


def test_summary_is_reused_when_no_file_loads(home: Path, monkeypatch) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA salesforce")
        con.execute("CREATE TABLE salesforce.lead (id VARCHAR, email VARCHAR)")
        con.execute("INSERT INTO salesforce.lead VALUES ('L1', 'P1@example.com')")
    write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 4) + ["bad,x,email,S,x,"])
    first = load(home)["touchpoints"]
    assert not first.summary_reused
    assert first.matched_people == {"touchpoints_with_email": 4, "touchpoints_matched": 1}
    monkeypatch.setattr(
        loader_module, "matched_people", lambda *a: pytest.fail("matched_people recomputed")
    )
    second = load(home)["touchpoints"]
    assert second.summary_reused
    assert (second.table_rows, second.quarantine_rows) == (4, 1)
    assert second.matched_people == first.matched_people
    assert second.preview_columns == first.preview_columns
    assert [[None if v is None else str(v) for v in row] for row in second.preview_rows] == [
        [None if v is None else str(v) for v in row] for row in first.preview_rows
    ]
    meta = report_metadata(second)
    assert meta["summary_reused"] is True and meta["rows_read"] == 0
    assert meta["quarantine_reasons"] == {}
    # A new file: the summary is computed again (matched_people must run).
    monkeypatch.undo()
    write(home, "touchpoints", "b.csv", [TP_HEADER] + tp_rows("b", 2))
    third = load(home)["touchpoints"]
    assert not third.summary_reused
    assert third.table_rows == 6
    assert third.matched_people == {"touchpoints_with_email": 6, "touchpoints_matched": 2}


def test_phase_timings_are_reported(home: Path) -> None:
    write(home, "touchpoints", "a.csv", [TP_HEADER] + tp_rows("a", 3))
    report = load(home)["touchpoints"]
    (result,) = report.files
    assert {"read", "dedupe", "write", "invariants"} <= set(result.phases)
    assert {"stat", "checksum", "read", "dedupe", "write", "summary"} <= set(report.phases)
    assert all(s >= 0 for s in report.phases.values())
    assert report_metadata(report)["phase_seconds"] == report.phases
