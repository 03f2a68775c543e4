"""Stage one landing file for validation: `mkt_stage(line BIGINT, <contract columns> VARCHAR)`.

Every landing file, CSV or Parquet, gets the same shape before validation: `mkt_stage` plus
`mkt_malformed(line, error_type, raw_line)` for CSV records DuckDB could not split into the
header's columns. For CSV, `mkt_stage` is a temp table (the rejects of the scan decide the line
numbers); for Parquet it is a temp view over `read_parquet`, so the file is scanned in place and
nothing of its size is copied. Reading happens entirely inside DuckDB (temp tables spill to
disk), so memory does not grow with the file. A file that cannot be read at all raises
`UnreadableFileError` and stages nothing.

Line numbers: for CSV, the header is line 1 and the n-th record is line n + 1 (exact for files
without blank lines or quoted multi-line values); for Parquet, `line` is the 1-based row number.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from assets.marketing.contract import CSV_SUFFIXES, PARQUET_SUFFIXES, REDACTED, KindSpec

log = logging.getLogger(__name__)

STAGE = "mkt_stage"
MALFORMED = "mkt_malformed"
_RAW = "mkt_raw"
_GAPS = "mkt_gaps"
_REJECTS = "mkt_rejects"
_REJECT_SCANS = "mkt_reject_scans"

# Anything that looks like an email address (x@y.z); scrubbed from free text (campaign, utm_*,
# malformed CSV lines, details, DuckDB error messages) so no plaintext address reaches the
# warehouse or a log.
_ATOM = r"[^\s,;:\"'<>()\[\]@]+"
EMAIL_PATTERN = rf"{_ATOM}@{_ATOM}\.{_ATOM}"
_EMAIL_RE = re.compile(EMAIL_PATTERN)

_CSV_OPTIONS = (
    "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', "
    "comment = '', skip = 0, encoding = 'utf-8', store_rejects = true, "
    f"rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'"
)
# DuckDB reject kinds that mean "this is not UTF-8 CSV text", i.e. the whole file is unusable.
_FATAL_REJECTS = ("INVALID ENCODING",)


class UnreadableFileError(Exception):
    """A landing file that cannot be loaded at all (message names the file and the problem)."""


@dataclass(frozen=True)
class StagedFile:
    rows_read: int  # staged rows + malformed records
    malformed_rows: int
    ignored_columns: tuple[str, ...]  # header columns outside the contract


def file_format(path: Path) -> str | None:
    """'csv', 'parquet' or None (not a landing file) from the file name."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def file_checksum(path: Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex of the file bytes, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def redact_emails(text: str) -> str:
    return _EMAIL_RE.sub(REDACTED, text)


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _short(error: Exception) -> str:
    """First line of a DuckDB error, with email-like substrings removed."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return redact_emails(first)


def _header_map(columns: list[str], spec: KindSpec, file: str) -> tuple[dict[str, str], list[str]]:
    """Map contract column -> actual column name (case/space/BOM-insensitive); check required."""
    actual = {c.replace("\ufeff", "").strip().lower(): c for c in columns}
    missing = [c for c in spec.required_columns if c not in actual]
    if missing:
        found = ", ".join(columns) or "(none)"
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in (";", "\t", "|")):
            hint = " CSV files must be comma-separated."
        raise UnreadableFileError(
            f"{file}: missing required column(s) {', '.join(missing)} in the header "
            f"(found: {found}). A {spec.kind} file needs the columns "
            f"{', '.join(spec.required_columns)} (optional: {', '.join(spec.optional_columns)})."
            + hint
        )
    ignored = [c for key, c in actual.items() if key not in spec.columns]
    return {c: actual[c] for c in spec.columns if c in actual}, ignored


def _select_list(mapping: dict[str, str], spec: KindSpec) -> str:
    parts = []
    for column in spec.columns:
        if column in mapping:
            quoted = '"' + mapping[column].replace('"', '""') + '"'
            parts.append(f"CAST({quoted} AS VARCHAR) AS {column}")
        else:
            parts.append(f"CAST(NULL AS VARCHAR) AS {column}")
    return ", ".join(parts)


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, spec: KindSpec, file: str) -> StagedFile:
    """Stage `path` into temp tables `mkt_stage` and `mkt_malformed`; raise if unreadable."""
    fmt = file_format(path)
    if fmt is None:
        raise UnreadableFileError(f"{file}: not a .csv, .csv.gz or .parquet file")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{file}: the file is empty (0 bytes); a CSV needs a header line")
    drop_stage(con)
    try:
        if fmt == "csv":
            staged = _stage_csv(con, path, spec, file)
        else:
            staged = _stage_parquet(con, path, spec, file)
    except UnreadableFileError:
        drop_stage(con)
        raise
    except duckdb.Error as exc:
        drop_stage(con)
        kind = "CSV" if fmt == "csv" else "Parquet"
        hint = ""
        if fmt == "csv" and "sniffing" in str(exc):
            hint = (
                " Check for an unterminated \" quote, a delimiter other than ',' or a"
                " non-UTF-8 encoding."
            )
        raise UnreadableFileError(
            f"{file}: cannot be read as {kind}: {_short(exc)}{hint}"
        ) from None
    if staged.ignored_columns:
        log.warning("%s: ignoring columns outside the contract: %s", file, staged.ignored_columns)
    return staged


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    for name in (STAGE, MALFORMED, _RAW, _GAPS, _REJECTS, _REJECT_SCANS):
        for kind in ("TABLE", "VIEW"):  # mkt_stage is a view for Parquet, a table for CSV
            with contextlib.suppress(duckdb.CatalogException):
                con.execute(f"DROP {kind} IF EXISTS {name}")


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, spec: KindSpec, file: str
) -> StagedFile:
    # A view, not a table: validation and the insert scan the Parquet file directly (columnar,
    # compressed, only the columns each pass needs), so nothing of the file's size is copied.
    source = f"read_parquet({sql_literal(str(path))}, file_row_number = true)"
    columns = [
        row[0]
        for row in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))})"
        ).fetchall()
    ]
    mapping, ignored = _header_map(columns, spec, file)
    con.execute(
        f"CREATE TEMP VIEW {STAGE} AS "
        f"SELECT file_row_number + 1 AS line, {_select_list(mapping, spec)} FROM {source}"
    )
    con.execute(
        f"CREATE TEMP TABLE {MALFORMED} (line BIGINT, error_type VARCHAR, raw_line VARCHAR)"
    )
    # The row count comes from the Parquet footer. A data page that does not decode fails the
    # insert later, inside the file's transaction, which then rolls back (the file fails).
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet({sql_literal(str(path))})").fetchone()
    return StagedFile(rows_read=rows, malformed_rows=0, ignored_columns=tuple(ignored))


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path, spec: KindSpec, file: str) -> StagedFile:
    source = f"read_csv({sql_literal(str(path))}, {_CSV_OPTIONS})"
    columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    mapping, ignored = _header_map(columns, spec, file)
    con.execute(f"DROP TABLE IF EXISTS {_REJECTS}; DROP TABLE IF EXISTS {_REJECT_SCANS}")
    # row_number() OVER () is a streaming window: it numbers records in file order. The header
    # is line 1, so without malformed records record k is line k + 1.
    con.execute(
        f"CREATE TEMP TABLE {_RAW} AS "
        f"SELECT row_number() OVER () + 1 AS line, {_select_list(mapping, spec)} FROM {source}"
    )
    fatal = con.execute(
        f"SELECT min(line), error_type FROM {_REJECTS} "
        f"WHERE CAST(error_type AS VARCHAR) IN ({', '.join(map(sql_literal, _FATAL_REJECTS))}) "
        "GROUP BY error_type"
    ).fetchall()
    if fatal:
        line, error_type = fatal[0]
        raise UnreadableFileError(
            f"{file}: {str(error_type).lower()} at line {line}: the file must be UTF-8 text "
            "(re-export it as UTF-8 CSV)"
        )
    # One malformed record per line (DuckDB reports one reject per missing column).
    con.execute(
        f"CREATE TEMP TABLE {MALFORMED} AS "
        "SELECT CAST(line AS BIGINT) AS line, "
        "min(CAST(error_type AS VARCHAR)) AS error_type, "
        "trim(any_value(csv_line), e'\\r\\n') AS raw_line "
        f"FROM {_REJECTS} GROUP BY line"
    )
    (malformed,) = con.execute(f"SELECT count(*) FROM {MALFORMED}").fetchone()
    if malformed == 0:
        con.execute(f"ALTER TABLE {_RAW} RENAME TO {STAGE}")
    else:
        # Good record k is the k-th record that is not malformed: with malformed record positions
        # p_1 < p_2 < ..., q_i = p_i - i good records precede the i-th malformed one, so record k
        # sits after max{i : q_i < k} malformed records.
        con.execute(
            f"CREATE TEMP TABLE {_GAPS} AS "
            "SELECT q, max(i) AS skipped FROM ("
            "  SELECT line - 1 - row_number() OVER (ORDER BY line) AS q, "
            "         row_number() OVER (ORDER BY line) AS i "
            f"  FROM {MALFORMED}) GROUP BY q"
        )
        con.execute(
            f"CREATE TEMP TABLE {STAGE} AS SELECT r.line + coalesce(g.skipped, 0) AS line, "
            f"{', '.join('r.' + c for c in spec.columns)} FROM {_RAW} r "
            f"ASOF LEFT JOIN {_GAPS} g ON r.line - 1 > g.q"
        )
        con.execute(f"DROP TABLE {_GAPS}; DROP TABLE {_RAW}")
    (rows,) = con.execute(f"SELECT count(*) FROM {STAGE}").fetchone()
    return StagedFile(
        rows_read=rows + malformed, malformed_rows=malformed, ignored_columns=tuple(ignored)
    )
