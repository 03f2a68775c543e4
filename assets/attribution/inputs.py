"""Read attribution input files (journey rows or aggregated paths) with line-numbered errors.

Two CSV formats (auto-detected from the header):

- **paths** (one row per distinct path): ``path`` with channels separated by ``>``,
  ``total_conversions``, optional ``total_conversion_value`` and ``total_null``. Column names
  and the separator are configurable (`PathColumns`).
- **journeys** (one row per touch): ``journey_id``, ``channel``, ``position`` and/or
  ``occurred_at`` (ISO 8601; orders touches when there is no position and feeds time decay),
  ``converted`` (1/0/true/false), optional ``value``, ``converted_at`` (the journey's conversion
  or close time, for time decay), ``lead_creation`` / ``opp_creation`` (1/0/true/false markers for
  W-shaped). ``converted`` / ``value`` / ``converted_at`` are journey-level: blank cells inherit
  the journey's value, and the non-blank cells of one journey must agree.

Every problem raises `InputError` naming the file and the line (the header is line 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from assets.attribution.journeys import Journeys, from_touches

FORMATS = ("auto", "journeys", "paths")
JOURNEY_ID, CHANNEL, POSITION, OCCURRED_AT = "journey_id", "channel", "position", "occurred_at"
CONVERTED, VALUE, CONVERTED_AT = "converted", "value", "converted_at"
LEAD_CREATION, OPP_CREATION = "lead_creation", "opp_creation"
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


class InputError(ValueError):
    """Bad input file; the message says where and what to fix."""


@dataclass(frozen=True)
class PathColumns:
    path: str = "path"
    sep: str = ">"
    conversions: str = "total_conversions"
    value: str = "total_conversion_value"
    null: str = "total_null"


def read_csv(file: str | Path) -> pd.DataFrame:
    """All cells as stripped strings; blank lines kept so row i is line i + 2."""
    p = Path(file)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        df = pd.read_csv(
            p, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8"
        )
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{p}: the file is empty (expected a CSV header line)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not a readable UTF-8 CSV file: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    for col in df.columns:
        df[col] = df[col].str.strip()
    if df.empty:
        raise InputError(f"{p}: no data rows after the header")
    return df


def detect_format(columns: list[str], cols: PathColumns) -> str:
    if cols.path in columns:
        return "paths"
    if JOURNEY_ID in columns:
        return "journeys"
    raise InputError(
        f"cannot tell the input format from the header {columns}: expected a '{cols.path}' column "
        f"(paths format) or '{JOURNEY_ID}' (journeys format); see --path-col / --format"
    )


def _line(index: int) -> int:
    return int(index) + 2


def _fail(source: str, index: int, message: str) -> InputError:
    return InputError(f"{source} line {_line(index)}: {message}")


def _require(df: pd.DataFrame, names: list[str], source: str, fmt: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {missing} for the {fmt} format; the header has "
            f"{list(df.columns)}"
        )


def _numbers(
    df: pd.DataFrame, col: str, source: str, *, blank: float | None, non_negative: bool = True
) -> np.ndarray:
    """Column as float64; blank cells -> `blank` (error if None); errors name the line."""
    raw = df[col]
    is_blank = raw == ""
    if blank is None and is_blank.any():
        raise _fail(source, int(np.flatnonzero(is_blank.to_numpy())[0]), f"'{col}' is empty")
    nums = pd.to_numeric(raw.where(~is_blank, None), errors="coerce").to_numpy(np.float64)
    bad = ~is_blank.to_numpy() & ~np.isfinite(nums)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, i, f"'{col}' is not a number: {raw.iloc[i]!r}")
    if non_negative and (nums < 0).any():
        i = int(np.flatnonzero(nums < 0)[0])
        raise _fail(source, i, f"'{col}' is negative ({raw.iloc[i]}); counts and values are >= 0")
    return np.where(is_blank.to_numpy(), np.nan if blank is None else blank, nums)


def _flags(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    """1/0/true/false/yes/no (or a non-negative count) -> float; blank -> NaN."""
    low = df[col].str.lower()
    is_true, is_false = low.isin(_TRUE).to_numpy(), low.isin(_FALSE).to_numpy()
    out = np.full(len(df), np.nan)
    out[is_true], out[is_false] = 1.0, 0.0
    rest = ~(is_true | is_false) & (low != "").to_numpy()
    if rest.any():
        nums = pd.to_numeric(low.where(rest, None), errors="coerce").to_numpy(np.float64)
        bad = rest & ~(np.isfinite(nums) & (nums >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, i, f"'{col}' must be 1/0/true/false, got {df[col].iloc[i]!r}")
        out[rest] = nums[rest]
    return out


def _journey_level(
    values: np.ndarray, jcodes: np.ndarray, col: str, source: str, *, required: bool
) -> np.ndarray:
    """Fill blank (NaN) cells from the journey's non-blank ones; they must agree."""
    s = pd.Series(values)
    first = s.groupby(jcodes).transform("first").to_numpy()
    clash = ~np.isnan(values) & (values != first)
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise _fail(
            source,
            i,
            f"'{col}' = {values[i]:g} disagrees with {first[i]:g} on an earlier row of the same "
            "journey (it is a journey-level column)",
        )
    if required and np.isnan(first).any():
        i = int(np.flatnonzero(np.isnan(first))[0])
        raise _fail(source, i, f"the journey has no '{col}' value on any row")
    return first


def journeys_from_touch_rows(df: pd.DataFrame, source: str = "input") -> Journeys:
    """Validate one-row-per-touch data and build `Journeys`."""
    _require(df, [JOURNEY_ID, CHANNEL, CONVERTED], source, "journeys")
    if POSITION not in df.columns and OCCURRED_AT not in df.columns:
        raise InputError(
            f"{source}: the journeys format needs '{POSITION}' or '{OCCURRED_AT}' to order "
            f"touches; the header has {list(df.columns)}"
        )
    for col in (JOURNEY_ID, CHANNEL):
        empty = (df[col] == "").to_numpy()
        if empty.any():
            raise _fail(source, int(np.flatnonzero(empty)[0]), f"'{col}' is empty")
    jcodes, _ = pd.factorize(df[JOURNEY_ID], sort=False)
    frame = pd.DataFrame({JOURNEY_ID: df[JOURNEY_ID], CHANNEL: df[CHANNEL]})
    time_col = None
    if OCCURRED_AT in df.columns:
        ts = pd.to_datetime(df[OCCURRED_AT], utc=True, format="ISO8601", errors="coerce")
        bad = ts.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(
                source,
                i,
                f"'{OCCURRED_AT}' is not an ISO 8601 timestamp: {df[OCCURRED_AT].iloc[i]!r}",
            )
        frame[OCCURRED_AT] = ts
        time_col = OCCURRED_AT
    if POSITION in df.columns:
        frame[POSITION] = _numbers(df, POSITION, source, blank=None, non_negative=False)
        order_col = POSITION
    else:
        order_col = OCCURRED_AT
    frame[CONVERTED] = _journey_level(
        _flags(df, CONVERTED, source), jcodes, CONVERTED, source, required=True
    )
    if VALUE in df.columns:
        frame[VALUE] = np.nan_to_num(
            _journey_level(
                _numbers(df, VALUE, source, blank=np.nan), jcodes, VALUE, source, required=False
            )
        )
    ref_col = None
    if CONVERTED_AT in df.columns:
        blank = (df[CONVERTED_AT] == "").to_numpy()
        ts = pd.to_datetime(df[CONVERTED_AT], utc=True, format="ISO8601", errors="coerce")
        bad = ts.isna().to_numpy() & ~blank
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, i, f"'{CONVERTED_AT}' is not an ISO 8601 timestamp")
        frame[CONVERTED_AT] = ts
        ref_col = CONVERTED_AT
    markers = {}
    for col in (LEAD_CREATION, OPP_CREATION):
        if col in df.columns:
            frame[col] = np.nan_to_num(_flags(df, col, source)) > 0
            markers[col] = col
    return from_touches(
        frame,
        order_col=order_col,
        value_col=VALUE if VALUE in frame.columns else None,
        time_col=time_col,
        reference_time_col=ref_col,
        lead_creation_col=markers.get(LEAD_CREATION),
        opp_creation_col=markers.get(OPP_CREATION),
    )


def journeys_from_path_rows(
    df: pd.DataFrame, cols: PathColumns | None = None, source: str = "input"
) -> Journeys:
    """Validate one-row-per-path data and build `Journeys` (one per path, weighted by counts)."""
    cols = cols or PathColumns()
    if not cols.sep:
        raise InputError("the path separator must not be empty")
    _require(df, [cols.path, cols.conversions], source, "paths")
    conversions = _numbers(df, cols.conversions, source, blank=None)
    value = (
        _numbers(df, cols.value, source, blank=0.0)
        if cols.value in df.columns
        else np.zeros(len(df))
    )
    nulls = (
        _numbers(df, cols.null, source, blank=0.0) if cols.null in df.columns else np.zeros(len(df))
    )
    parts = df[cols.path].str.split(cols.sep, regex=False).explode().str.strip()
    empty = (parts == "").to_numpy()
    if empty.any():
        i = int(parts.index[np.flatnonzero(empty)[0]])
        what = "empty path" if df[cols.path].iloc[i] == "" else "empty channel name in path"
        raise _fail(source, i, f"{what} {df[cols.path].iloc[i]!r} in column '{cols.path}'")
    lengths = np.bincount(parts.index.to_numpy(), minlength=len(df))
    codes, uniques = pd.factorize(parts.to_numpy(dtype=object), sort=True)
    return Journeys(
        channels=tuple(str(u) for u in uniques),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        touch_channel=codes.astype(np.int64),
        conversions=conversions,
        value=value,
        nulls=nulls,
        journey_ids=np.arange(_line(0), _line(len(df))),  # path "ids" are their line numbers
    )


def load_journeys(
    file: str | Path, fmt: str = "auto", cols: PathColumns | None = None
) -> tuple[Journeys, str]:
    """Read `file` and return (journeys, detected format)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    cols = cols or PathColumns()
    df = read_csv(file)
    source = str(file)
    if fmt == "auto":
        fmt = detect_format(list(df.columns), cols)
    if fmt == "paths":
        return journeys_from_path_rows(df, cols, source), fmt
    return journeys_from_touch_rows(df, source), fmt
