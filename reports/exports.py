"""Finance exports of published forecasts: immutable, versioned, complete-or-absent.

Layout under `paths().exports / "forecasts" / <cadence>/`:

    <as_of>/v001/forecast.parquet, forecast.csv, forecast.xlsx, manifest.json
    <as_of>/v002/...            a later run for the same as-of date (one immutable version per run)
    latest -> <as_of>/vNNN      symlink to the newest complete export (newest as-of date)
    LATEST                      the same target as a text line, for tools that dislike symlinks

Policy "one immutable version per run": a folder is never modified after it appears. Exporting
again with the same run_id is a no-op that returns the existing version; a different run_id
gets the next version folder. Files are written into a hidden temp folder beside the target and
renamed into place only when complete (rename is atomic on one filesystem); `latest` and
`LATEST` are then switched with `os.replace`, and only move forward in as-of time (a backfill of
an old partition does not take `latest` back).

Schema (stable; documented in docs/FORECASTS.md): EXPORT_COLUMNS below.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EXPORT_COLUMNS = [
    "as_of",
    "cadence",
    "period_start",
    "period_end",
    "segment",
    "region",
    "currency",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "model",
    "run_id",
    "dq_score",
    "generated_at",
]
ARROW_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("cadence", pa.string()),
        ("period_start", pa.date32()),
        ("period_end", pa.date32()),
        ("segment", pa.string()),
        ("region", pa.string()),
        ("currency", pa.string()),
        ("point", pa.float64()),
        ("lo80", pa.float64()),
        ("hi80", pa.float64()),
        ("lo95", pa.float64()),
        ("hi95", pa.float64()),
        ("model", pa.string()),
        ("run_id", pa.string()),
        ("dq_score", pa.float64()),
        ("generated_at", pa.timestamp("us", tz="UTC")),
    ]
)
FILES = ("forecast.parquet", "forecast.csv", "forecast.xlsx")
_VERSION_RE = re.compile(r"^v(\d{3,})$")


class ExportRefused(RuntimeError):
    """The export may not be produced (e.g. data quality below the gate)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    version: int
    created: bool  # False when this run had already exported (idempotent rerun)
    manifest: dict


def export_table(forecast: pd.DataFrame, dq_score: float | None) -> pd.DataFrame:
    """The finance schema from a `forecasts.forecasts` partition table."""
    t = forecast.copy()
    t["dq_score"] = round(float(dq_score), 6) if dq_score is not None else float("nan")
    for col in ("point", "lo80", "hi80", "lo95", "hi95"):
        t[col] = t[col].astype(float).round(2)  # USD cents, identical in every format
    for col in ("as_of", "period_start", "period_end"):
        t[col] = pd.to_datetime(t[col]).dt.date
    t["generated_at"] = pd.to_datetime(t["generated_at"], utc=True)
    t = t.sort_values(["period_start", "segment", "region"]).reset_index(drop=True)
    return t[EXPORT_COLUMNS]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _existing_versions(as_of_dir: Path) -> dict[int, Path]:
    out = {}
    if as_of_dir.is_dir():
        for p in as_of_dir.iterdir():
            m = _VERSION_RE.match(p.name)
            if m and p.is_dir():
                out[int(m.group(1))] = p
    return out


def _write_files(table: pd.DataFrame, folder: Path) -> dict:
    arrow = pa.Table.from_pandas(table, schema=ARROW_SCHEMA, preserve_index=False)
    pq.write_table(arrow, folder / "forecast.parquet")
    csv = table.copy()
    csv["generated_at"] = csv["generated_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    csv.to_csv(folder / "forecast.csv", index=False)
    xl = csv.copy()
    with pd.ExcelWriter(folder / "forecast.xlsx", engine="openpyxl") as xw:
        xl.to_excel(xw, sheet_name="forecast", index=False)
    return {
        name: {
            "sha256": _sha256(folder / name),
            "rows": len(table),
            "bytes": (folder / name).stat().st_size,
        }
        for name in FILES
    }


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # best effort (not every filesystem supports it)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_export(
    table: pd.DataFrame,
    cadence: str,
    as_of: str | dt.date,
    run_id: str,
    root: Path,
    dq_score: float | None = None,
    min_dq_score: float | None = 0.98,
) -> ExportResult:
    """Write one immutable export version (see module docstring). `root` is
    `paths().exports / "forecasts"`. Raises ExportRefused when dq_score < min_dq_score."""
    if min_dq_score is not None and dq_score is not None and dq_score < min_dq_score:
        raise ExportRefused(
            f"data-quality score {dq_score:.2%} is below the {min_dq_score:.0%} gate: the "
            f"{cadence} finance export for {as_of} is not produced; fix the data and rerun"
        )
    missing = [c for c in EXPORT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"export table lacks column(s): {', '.join(missing)}")
    as_of_s = pd.Timestamp(as_of).strftime("%Y-%m-%d")
    cad_dir = Path(root) / cadence
    _check_latest_is_ours(cad_dir)
    as_of_dir = cad_dir / as_of_s
    as_of_dir.mkdir(parents=True, exist_ok=True)
    for v, p in sorted(_existing_versions(as_of_dir).items()):
        man = json.loads((p / "manifest.json").read_text())
        if man.get("run_id") == run_id:
            log.info("export %s already exists for run %s; not rewritten", p, run_id)
            return ExportResult(p, v, False, man)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{as_of_s}-", dir=cad_dir))
    try:
        files = _write_files(table, tmp)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "cadence": cadence,
            "as_of": as_of_s,
            "run_id": run_id,
            "rows": len(table),
            "columns": EXPORT_COLUMNS,
            "dq_score": dq_score,
            "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for name in (*FILES, "manifest.json"):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        while True:  # claim the next version number; a concurrent writer makes us retry
            version = max(_existing_versions(as_of_dir), default=0) + 1
            final = as_of_dir / f"v{version:03d}"
            if final.exists():
                continue
            try:
                os.rename(tmp, final)
                break
            except OSError:
                if final.exists():
                    continue
                raise
        _fsync_dir(as_of_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(final, 0o555)  # read-only: immutable by convention and by permission
    _switch_latest(cad_dir, final)
    log.info("finance export %s written (%d rows)", final, len(table))
    return ExportResult(final, version, True, manifest)


def _latest_target(cad_dir: Path) -> Path | None:
    link = cad_dir / "latest"
    if link.is_symlink():
        return (cad_dir / os.readlink(link)).resolve()
    return None


def _check_latest_is_ours(cad_dir: Path) -> None:
    """Refuse, before any work, when `latest` is not the symlink this module maintains.

    A copy of the exports folder made without keeping symlinks (`cp -rL`, `shutil.copytree`
    without `symlinks=True`) turns `latest` into a plain folder; replacing it would fail half-way
    (or delete what someone put there), so say what happened and how to fix it instead."""
    link = cad_dir / "latest"
    if link.exists() and not link.is_symlink():
        kind = "folder" if link.is_dir() else "file"
        raise ExportRefused(
            f"{link} is a {kind}, not the symlink the finance export maintains (was the exports "
            f"folder copied without keeping symlinks, e.g. `cp -rL` or shutil.copytree without "
            f"symlinks=True?). Nothing was written. Check it holds nothing you need, remove it, "
            f"and rerun: the export recreates it. {cad_dir / 'LATEST'} names the current version."
        )


def _switch_latest(cad_dir: Path, final: Path) -> None:
    """Point `latest` (symlink) and `LATEST` (text) at `final` unless a newer as-of is current."""
    current = _latest_target(cad_dir)
    if current is not None and current.exists():
        cur_as_of = current.parent.name
        if cur_as_of > final.parent.name:
            return
    rel = os.path.relpath(final, cad_dir)
    tmp_link = cad_dir / f".latest-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(rel, tmp_link)
    os.replace(tmp_link, cad_dir / "latest")
    tmp_txt = cad_dir / f".LATEST-{os.getpid()}"
    tmp_txt.write_text(rel + "\n")
    os.replace(tmp_txt, cad_dir / "LATEST")


def verify_export(folder: Path) -> list[str]:
    """Problems found checking a folder against its manifest (empty list = complete, intact)."""
    folder = Path(folder)
    man_path = folder / "manifest.json"
    if not man_path.exists():
        return ["manifest.json missing"]
    man = json.loads(man_path.read_text())
    problems = []
    for name, info in man["files"].items():
        p = folder / name
        if not p.exists():
            problems.append(f"{name} missing")
        elif _sha256(p) != info["sha256"]:
            problems.append(f"{name} checksum mismatch")
    return problems
