"""`make demo` end to end, in a fresh SALESOPS_HOME, with a guard that fails any non-loopback
connection in every Python process of the run (dbt's subprocesses included).

Run twice: the second run must succeed too, change no raw row count (idempotent extraction and
loading), and leave the first run's finance export untouched (one immutable version per run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from sandbox.schema import OBJECT_NAMES, snake

ROOT = Path(__file__).resolve().parents[2]
NETGUARD = Path(__file__).resolve().parent / "netguard"


def _run_demo(home: Path, guard_log: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SALESOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "PYTHONPATH": os.pathsep.join([str(NETGUARD), os.environ.get("PYTHONPATH", "")]),
        "SALESOPS_NETGUARD_LOG": str(guard_log),
        # same forecast code path with fewer backtest origins (docs/FORECASTS.md)
        "SALESOPS_FORECAST_PROFILE": "fast",
    }
    for k in [k for k in env if k.startswith("SALESFORCE_")]:
        env.pop(k)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def _raw_counts(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            obj: con.execute(f"select count(*) from salesforce.{snake(obj)}").fetchone()[0]
            for obj in OBJECT_NAMES
        } | {
            t: con.execute(f"select count(*) from marketing.{t}").fetchone()[0]
            for t in ("ad_spend", "touchpoints")
        }
    finally:
        con.close()


def _tree_digest(folder: Path) -> dict[str, str]:
    """Digest of every export file, skipping the `latest`/`LATEST` pointers (they may move)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.lower() == "latest" for part in rel.parts):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo") / "home"
    guard_log = home.parent / "netguard.log"
    first = _run_demo(home, guard_log)
    return home, guard_log, first


def test_demo_succeeds_offline(demo_home):
    home, guard_log, run = demo_home
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-6000:]
    assert "salesops demo run: SUCCESS" in run.stdout
    # the guard is active in the child (it logs nothing when nothing tried the network)
    assert not guard_log.exists() or guard_log.read_text() == "", guard_log.read_text()
    for needle in (
        "Raw rows loaded",
        "Data quality:",
        "Next forecast values",
        "Finance exports",
        "make ui",
    ):
        assert needle in run.stdout, f"summary lacks {needle!r}:\n{run.stdout[-3000:]}"


def test_raw_tables_hold_the_whole_org(demo_home):
    home, _, run = demo_home
    assert run.returncode == 0
    counts = _raw_counts(home / "warehouse.duckdb")
    for obj in OBJECT_NAMES:
        expected = pq.read_metadata(home / "demo_org" / f"{obj}.parquet").num_rows
        assert counts[obj] == expected, f"{obj}: {counts[obj]} loaded vs {expected} in the org"


def test_outputs_exist_and_verify(demo_home):
    home, _, run = demo_home
    assert run.returncode == 0
    # analysts' copy: opens read-only and has the marts
    con = duckdb.connect(str(home / "marts.duckdb"), read_only=True)
    try:
        n_opps = con.execute("select count(*) from marts.opportunities").fetchone()[0]
    finally:
        con.close()
    assert n_opps > 0
    # one complete finance export per cadence run, checksums as the manifest says
    manifests = list((home / "exports" / "forecasts").rglob("manifest.json"))
    assert manifests, "no finance export written"
    for m in manifests:
        manifest = json.loads(m.read_text())
        files = manifest["files"]
        assert {Path(f).suffix for f in files} >= {".parquet", ".csv", ".xlsx"}
        for name, meta in files.items():
            digest = hashlib.sha256((m.parent / name).read_bytes()).hexdigest()
            assert digest == meta["sha256"], f"{m.parent / name} does not match its manifest"
    report = home / "reports" / "data_quality" / "latest.html"
    assert report.exists() and "http://" not in report.read_text()


def test_readme_example_queries_run_on_the_analyst_copy(demo_home):
    home, _, run = demo_home
    assert run.returncode == 0
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("```sql") + 6 :]
    block = block[: block.index("```")]
    statements = [s.strip() for s in block.split(";") if s.strip()]
    assert len(statements) >= 3
    con = duckdb.connect(str(home / "marts.duckdb"), read_only=True)
    try:
        for sql in statements:
            rows = con.execute(sql).fetchall()
            assert rows, f"README query returns nothing on the demo:\n{sql}"
    finally:
        con.close()


def test_second_run_is_idempotent_and_keeps_exports(demo_home):
    home, guard_log, first = demo_home
    assert first.returncode == 0
    before = _raw_counts(home / "warehouse.duckdb")
    exports = home / "exports" / "forecasts"
    digest_before = _tree_digest(exports)
    second = _run_demo(home, guard_log)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-6000:]
    assert _raw_counts(home / "warehouse.duckdb") == before
    digest_after = _tree_digest(exports)
    changed = {k for k in digest_before if digest_after.get(k) != digest_before[k]}
    assert not changed, f"export files changed by a later run: {sorted(changed)}"
    assert not guard_log.exists() or guard_log.read_text() == ""
