"""Load the marketing landing folder into the DuckDB warehouse (schema `marketing`).

`load_landing(warehouse, landing_dir)` is the whole job, without Dagster:
- finds `<landing_dir>/<kind>/*.csv|*.csv.gz|*.parquet` for kind in ad_spend, touchpoints
  (hidden files are skipped so a file can be written under a hidden name and renamed in);
- skips files whose name and sha256 are already in `marketing.loaded_files`; a file whose
  checksum changed replaces its earlier rows (delete by source file, then insert) and its
  quarantine rows, in one transaction per file;
- validates every row in SQL (validate.py); bad rows go to `marketing.quarantine` with file,
  line, reason, detail and the raw row as JSON (email redacted); per file
  rows_read = rows_loaded + rows_quarantined is checked before commit;
- an unreadable file (empty, corrupt, not UTF-8, header missing a required column) loads
  nothing and is reported as failed; the other files still load. `raise_for_failures` turns
  failures into one error naming every bad file.
Files that disappeared from the landing folder keep their rows (reported as missing).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from assets.marketing import contract as c
from assets.marketing.reader import (
    MALFORMED,
    UnreadableFileError,
    drop_stage,
    file_checksum,
    file_format,
    sql_literal,
    stage_file,
)
from assets.marketing.validate import CLASSIFIED, classify, quarantine_rows_sql

log = logging.getLogger(__name__)

LOADED = "loaded"
REPLACED = "replaced"
SKIPPED = "skipped"
FAILED = "failed"

_TARGET_COLUMNS = {
    c.AD_SPEND: (
        "date",
        "channel",
        "campaign",
        "spend",
        "currency",
        "impressions",
        "clicks",
    ),
    c.TOUCHPOINTS: (
        "touchpoint_id",
        "occurred_at",
        "channel",
        "campaign",
        "touch_type",
        "email_hash",
        "utm_source",
        "utm_medium",
        "utm_campaign",
    ),
}
PREVIEW_ROWS = 5
DEFAULT_MEMORY_LIMIT = "1GB"


class MarketingLoadError(Exception):
    """One or more landing files could not be loaded (message names each file and why)."""


class LoaderInvariantError(Exception):
    """rows_read != rows_loaded + rows_quarantined for a file: a loader bug, nothing committed."""


@dataclass
class FileResult:
    file: str  # "<kind>/<file name>", also the source_file column value
    kind: str
    status: str  # loaded | replaced | skipped | failed
    checksum: str
    size_bytes: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    error: str | None = None
    ignored_columns: tuple[str, ...] = ()


@dataclass
class KindReport:
    """What one run did for one kind (ad_spend or touchpoints)."""

    kind: str
    files: list[FileResult] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)  # loaded before, gone from landing
    ignored_files: list[str] = field(default_factory=list)  # not .csv/.csv.gz/.parquet
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # rows quarantined this run
    table_rows: int = 0
    quarantine_rows: int = 0  # all quarantined rows of this kind in the warehouse
    matched_people: dict[str, int] | None = None  # touchpoints only, when Salesforce is loaded
    preview_columns: list[str] = field(default_factory=list)
    preview_rows: list[tuple] = field(default_factory=list)
    seconds: float = 0.0

    def with_status(self, *statuses: str) -> list[FileResult]:
        return [f for f in self.files if f.status in statuses]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.with_status(LOADED, REPLACED))

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.with_status(LOADED, REPLACED))

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.with_status(LOADED, REPLACED))

    @property
    def failures(self) -> list[FileResult]:
        return self.with_status(FAILED)


@contextlib.contextmanager
def connect_warehouse(
    warehouse: Path, lock_timeout: float = 60.0, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (waiting up to lock_timeout s for another writer), always close it.

    `memory_limit` caps DuckDB's buffer memory; staging tables beyond it spill to
    `<warehouse>.tmp/`, so a large landing file does not need a large machine.
    """
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            con = duckdb.connect(str(warehouse))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            log.warning("warehouse %s is locked by another writer; retrying", warehouse)
            time.sleep(1.0)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
        yield con
    finally:
        con.close()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(c.DDL)


def discover(landing_dir: Path, kind: str) -> tuple[list[Path], list[str]]:
    """Landing files of one kind in name order, plus names of files the loader ignores."""
    folder = landing_dir / kind
    folder.mkdir(parents=True, exist_ok=True)
    files, ignored = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if file_format(path) is None:
            ignored.append(f"{kind}/{path.name}")
        else:
            files.append(path)
    return files, ignored


def load_landing(
    warehouse: Path,
    landing_dir: Path,
    kinds: Iterable[str] = c.KINDS,
    *,
    salt: str | None = None,
    force: bool = False,
    lock_timeout: float = 60.0,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> dict[str, KindReport]:
    """Load new and changed landing files of `kinds`; return one report per kind.

    Never raises for a bad file (see `raise_for_failures`); raises for a warehouse that cannot
    be opened. `force=True` reloads unchanged files too (e.g. after a vocabulary change).
    """
    salt = salt if salt is not None else c.email_salt()
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    reports: dict[str, KindReport] = {}
    with connect_warehouse(warehouse, lock_timeout, memory_limit) as con:
        ensure_tables(con)
        for kind in kinds:
            if kind not in c.SPECS:
                raise ValueError(f"unknown marketing file kind {kind!r}; expected one of {c.KINDS}")
            started = time.monotonic()
            report = _load_kind(con, landing_dir, kind, salt, loaded_at, force)
            _summarize(con, report, salt, loaded_at)
            report.seconds = round(time.monotonic() - started, 3)
            reports[kind] = report
            log.info(
                "marketing.%s: %d file(s) loaded, %d replaced, %d skipped, %d failed; rows read %d,"
                " loaded %d, quarantined %d (%.1f s)",
                kind,
                len(report.with_status(LOADED)),
                len(report.with_status(REPLACED)),
                len(report.with_status(SKIPPED)),
                len(report.failures),
                report.rows_read,
                report.rows_loaded,
                report.rows_quarantined,
                report.seconds,
            )
    return reports


def raise_for_failures(reports: Iterable[KindReport]) -> None:
    failures = [f for report in reports for f in report.failures]
    if failures:
        lines = "\n".join(f"- {f.error}" for f in failures)
        raise MarketingLoadError(
            f"{len(failures)} marketing landing file(s) could not be loaded (nothing from them "
            f"was written; fix or remove them and rerun):\n{lines}"
        )


def _load_kind(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    kind: str,
    salt: str,
    loaded_at: datetime,
    force: bool,
) -> KindReport:
    report = KindReport(kind=kind)
    files, report.ignored_files = discover(landing_dir, kind)
    for name in report.ignored_files:
        log.warning("ignoring %s: only .csv, .csv.gz and .parquet files are loaded", name)
    known = dict(
        con.execute(
            f"SELECT file, checksum FROM {c.SCHEMA}.{c.LOADED_FILES_TABLE} WHERE kind = ?", [kind]
        ).fetchall()
    )
    present = {f"{kind}/{path.name}" for path in files}
    report.missing_files = sorted(set(known) - present)
    for name in report.missing_files:
        log.warning("%s was loaded before but is no longer in the landing folder; rows kept", name)
    for path in files:
        file = f"{kind}/{path.name}"
        checksum = file_checksum(path)
        size = path.stat().st_size
        if known.get(file) == checksum and not force:
            report.files.append(FileResult(file, kind, SKIPPED, checksum, size))
            continue
        status = REPLACED if file in known else LOADED
        log.info("loading %s (%s, %.1f MB)", file, status, size / 1e6)
        result = _load_file(con, path, file, kind, checksum, size, salt, loaded_at)
        if result.status != FAILED:
            result.status = status
        report.files.append(result)
    return report


def _load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file: str,
    kind: str,
    checksum: str,
    size: int,
    salt: str,
    loaded_at: datetime,
) -> FileResult:
    result = FileResult(file, kind, LOADED, checksum, size)
    spec = c.SPECS[kind]
    try:
        staged = stage_file(con, path, spec, file)
    except UnreadableFileError as exc:
        log.error("%s", exc)
        result.status, result.error = FAILED, str(exc)
        return result
    result.rows_read, result.ignored_columns = staged.rows_read, staged.ignored_columns
    target = f"{c.SCHEMA}.{kind}"
    quarantine = f"{c.SCHEMA}.{c.QUARANTINE_TABLE}"
    columns = _TARGET_COLUMNS[kind]
    con.begin()
    try:
        con.execute(f"DELETE FROM {target} WHERE source_file = ?", [file])
        con.execute(f"DELETE FROM {quarantine} WHERE file = ?", [file])
        classify(con, kind, salt)
        con.execute(
            f"INSERT INTO {target} ({', '.join(columns)}, source_file, source_line, loaded_at) "
            f"SELECT {', '.join(columns)}, ?, line, ? FROM {CLASSIFIED} "
            "WHERE reason IS NULL",
            [file, loaded_at],
        )
        con.execute(
            f"INSERT INTO {quarantine} (file, kind, line, reason, detail, raw_row, loaded_at) "
            f"SELECT ?, ?, line, reason, detail, raw_row, ? FROM ({quarantine_rows_sql(kind)}) "
            "UNION ALL "
            f"SELECT ?, ?, line, '{c.REASON_MALFORMED_ROW}', "
            "'CSV record does not match the header: ' || lower(error_type), "
            "mkt_redact(CAST(json_object('csv_line', raw_line) AS VARCHAR)), ? "
            f"FROM {MALFORMED}",
            [file, kind, loaded_at, file, kind, loaded_at],
        )
        (result.rows_loaded,) = con.execute(
            f"SELECT count(*) FROM {target} WHERE source_file = ?", [file]
        ).fetchone()
        (result.rows_quarantined,) = con.execute(
            f"SELECT count(*) FROM {quarantine} WHERE file = ?", [file]
        ).fetchone()
        if result.rows_read != result.rows_loaded + result.rows_quarantined:
            raise LoaderInvariantError(
                f"{file}: read {result.rows_read} rows but loaded {result.rows_loaded} and "
                f"quarantined {result.rows_quarantined}; nothing from this file was committed"
            )
        con.execute(f"DELETE FROM {c.SCHEMA}.{c.LOADED_FILES_TABLE} WHERE file = ?", [file])
        con.execute(
            f"INSERT INTO {c.SCHEMA}.{c.LOADED_FILES_TABLE} (file, kind, checksum, size_bytes, "
            "rows_read, rows_loaded, rows_quarantined, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                file,
                kind,
                checksum,
                size,
                result.rows_read,
                result.rows_loaded,
                result.rows_quarantined,
                loaded_at,
            ],
        )
        con.commit()
    except (duckdb.Error, LoaderInvariantError) as exc:
        con.rollback()
        log.error("%s: load rolled back: %s", file, exc)
        result.status = FAILED
        result.error = str(exc) if isinstance(exc, LoaderInvariantError) else f"{file}: {exc}"
        result.rows_loaded = result.rows_quarantined = 0
        return result
    finally:
        drop_stage(con)
        con.execute(f"DROP TABLE IF EXISTS {CLASSIFIED}")
    log.info(
        "%s: read %d, loaded %d, quarantined %d",
        file,
        result.rows_read,
        result.rows_loaded,
        result.rows_quarantined,
    )
    return result


def _summarize(
    con: duckdb.DuckDBPyConnection, report: KindReport, salt: str, loaded_at: datetime
) -> None:
    target = f"{c.SCHEMA}.{report.kind}"
    quarantine = f"{c.SCHEMA}.{c.QUARANTINE_TABLE}"
    (report.table_rows,) = con.execute(f"SELECT count(*) FROM {target}").fetchone()
    (report.quarantine_rows,) = con.execute(
        f"SELECT count(*) FROM {quarantine} WHERE kind = ?", [report.kind]
    ).fetchone()
    report.quarantine_reasons = dict(
        con.execute(
            f"SELECT reason, count(*) FROM {quarantine} WHERE kind = ? AND loaded_at = ? "
            "GROUP BY reason ORDER BY count(*) DESC, reason",
            [report.kind, loaded_at],
        ).fetchall()
    )
    preview = con.execute(
        f"SELECT * EXCLUDE (loaded_at) FROM {target} ORDER BY source_file, source_line "
        f"LIMIT {PREVIEW_ROWS}"
    )
    report.preview_columns = [d[0] for d in preview.description]
    report.preview_rows = preview.fetchall()
    if report.kind == c.TOUCHPOINTS:
        report.matched_people = matched_people(con, salt)


def matched_people(con: duckdb.DuckDBPyConnection, salt: str) -> dict[str, int] | None:
    """Touchpoints whose email hash matches a Salesforce Lead/Contact email (None if not loaded)."""
    sources = [
        table
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'salesforce' "
            "AND table_name IN ('lead', 'contact') AND column_name = 'email' ORDER BY table_name"
        ).fetchall()
    ]
    if not sources:
        return None
    people = " UNION ".join(
        f"SELECT sha256(? || lower(trim(email))) AS h FROM salesforce.{t} WHERE email IS NOT NULL"
        for t in sources
    )
    with_hash, matched = con.execute(
        f"WITH people AS ({people}) "
        "SELECT count(email_hash), count(email_hash) FILTER (WHERE email_hash IN "
        f"(SELECT h FROM people)) FROM {c.SCHEMA}.{c.TOUCHPOINTS}",
        [salt] * len(sources),
    ).fetchone()
    return {"touchpoints_with_email": with_hash, "touchpoints_matched": matched}
