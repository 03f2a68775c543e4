"""Checks of the opportunity-keyed incremental dbt models (tests, benchmark, operators).

* `run_dbt` runs dbt on a SALESOPS_HOME with a private target path and returns per-node seconds
  and the subprocess peak RSS;
* `snapshot_tables` / `differences`: copy the incremental tables, rebuild them with
  `--full-refresh`, compare (EXCEPT ALL both ways); `changed_opportunities` reads how many
  opportunities each model's last build recomputed (intermediate.incremental_state);
* `load_warehouse` / `merge_like_dlt` / `add_touchpoints`: a sandbox org loaded the way dlt loads
  it, then a later org merged the way dlt merges (new `_dlt_load_id` on every new, changed or
  deleted row), and a late touchpoint file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets.dbt.project import PROFILES_DIR, PROJECT_DIR, dbt_env, dbt_executable
from sandbox.marketing import generate_marketing
from sandbox.org import Org, load_into_duckdb, snake

# The opportunity-keyed incremental models (macros/incremental_by_opportunity.sql).
INCREMENTAL_MODELS = {
    "int_opportunity_states_sequenced": "intermediate",
    "int_opportunity_stage_entries_aggregated": "intermediate",
    "int_opportunity_process_checked": "intermediate",
    "int_opportunity_product_families_ranked": "intermediate",
    "opportunities": "marts",
    "opportunity_history": "marts",
    "int_opportunity_journeys": "intermediate",
    "attribution_touchpoints": "marts",
    "pipeline_snapshots": "marts",
}
SALT = "salesops-demo-salt"
FIRST_LOADED_AT = datetime(2026, 1, 1)


def _sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list:
    """Run one statement and fetch its result (DuckDB 2 refuses new work on an unread one)."""
    return con.execute(sql, params or []).fetchall()


def email_hash(email: str | None, salt: str = SALT) -> str | None:
    if email is None or not email.strip():
        return None
    return hashlib.sha256((salt + email.strip().lower()).encode()).hexdigest()


def marketing_tables(org: Org, salt: str = SALT) -> tuple[pa.Table, pa.Table]:
    """marketing.ad_spend and marketing.touchpoints as the loader writes them (touchpoints with
    the salted email hash, source_file and loaded_at)."""
    generated = generate_marketing(org)
    touches = generated["touchpoints"]
    n = touches.num_rows
    return generated["ad_spend"], pa.table(
        {
            "touchpoint_id": pc.cast(touches["touchpoint_id"], pa.string()),
            "occurred_at": touches["occurred_at"],
            "channel": touches["channel"],
            "campaign": touches["campaign"],
            "touch_type": touches["touch_type"],
            "email_hash": pa.array(
                [email_hash(e, salt) for e in touches["email"].to_pylist()], pa.string()
            ),
            "source_file": pa.array(["touchpoints/first.csv"] * n),
            "source_line": pa.array(range(n), pa.int64()),
            "loaded_at": pa.array([FIRST_LOADED_AT] * n, pa.timestamp("us")),
        }
    )


def load_warehouse(org: Org, warehouse: Path, salt: str = SALT) -> None:
    """The org as dlt loads it (one load id) plus the marketing touchpoints."""
    load_into_duckdb(org, warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        _sql(con, "create schema if not exists marketing")
        spend, touches = marketing_tables(org, salt)
        con.register("spend_in", spend)
        _sql(con, "create or replace table marketing.ad_spend as select * from spend_in")
        con.register("touch_in", touches)
        _sql(con, "create or replace table marketing.touchpoints as select * from touch_in")
    finally:
        con.close()


def merge_like_dlt(old: Org, new: Org, warehouse: Path, load_id: str) -> dict[str, int]:
    """Load `new` over a warehouse holding `old` the way dlt merges on Id: every new or changed
    row (deleted ones included, is_deleted = true) replaces the old one and carries `load_id`.
    Returns the number of merged rows per table."""
    merged: dict[str, int] = {}
    con = duckdb.connect(str(warehouse))
    try:
        for name, tbl in new.tables.items():
            table = f'salesforce."{snake(name)}"'
            renamed = tbl.rename_columns([snake(c) for c in tbl.column_names])
            con.register("new_rows", renamed)
            columns = ", ".join(f'"{c}"' for c in renamed.column_names)
            _sql(
                con,
                f"create or replace temp table changed as "
                f"select {columns} from new_rows except select {columns} from {table}",
            )
            _sql(con, f"delete from {table} where id in (select id from changed)")
            _sql(
                con,
                f"insert into {table} ({columns}, _dlt_load_id, _dlt_id) "
                f"select {columns}, ?, id from changed",
                [load_id],
            )
            merged[snake(name)] = con.execute("select count(*) from changed").fetchall()[0][0]
            con.unregister("new_rows")
    finally:
        con.close()
    return merged


def add_touchpoints(warehouse: Path, people: int, loaded_at: datetime, salt: str = SALT) -> int:
    """New touches (a later file) for `people` converted leads and contacts linked to deals."""
    con = duckdb.connect(str(warehouse))
    try:
        emails = [
            r[0]
            for r in con.execute(
                "select email from ("
                "select email from salesforce.lead where converted_opportunity_id is not null "
                "and email is not null union "
                "select c.email from salesforce.contact as c "
                "join salesforce.opportunity_contact_role as r on r.contact_id = c.id "
                "where c.email is not null) order by email limit ?",
                [people],
            ).fetchall()
        ]
        as_of = con.execute("select max(system_modstamp) from salesforce.opportunity").fetchall()[0]
        occurred = as_of[0] - timedelta(days=1)
        rows = pa.table(
            {
                "touchpoint_id": [f"new-{i}" for i in range(len(emails))],
                "occurred_at": [occurred] * len(emails),
                "channel": ["Email"] * len(emails),
                "campaign": ["late-file"] * len(emails),
                "touch_type": ["click"] * len(emails),
                "email_hash": [email_hash(e, salt) for e in emails],
                "source_file": ["touchpoints/second.csv"] * len(emails),
                "source_line": list(range(len(emails))),
                "loaded_at": pa.array([loaded_at] * len(emails), pa.timestamp("us")),
            }
        )
        con.register("late", rows)
        _sql(
            con,
            "insert into marketing.touchpoints by name "
            "select * replace (cast(occurred_at as timestamptz) as occurred_at) from late",
        )
    finally:
        con.close()
    return len(emails)


def _peak_rss_mb(pid: int, stop: threading.Event, out: list[float]) -> None:
    """Peak RSS of a process and its children, sampled every 0.2 s from /proc."""
    peak = 0.0
    while not stop.is_set():
        total = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text().split()
                if int(proc.name) != pid and int(stat[3]) != pid:
                    continue
                total += int(stat[23]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError, IndexError):
                continue
        peak = max(peak, total / 2**20)
        stop.wait(0.2)
    out.append(peak)


def run_dbt(
    args: list[str],
    home: Path,
    target: Path,
    project_dir: Path = PROJECT_DIR,
    check: bool = True,
) -> dict:
    """`dbt <args>` on `home` with a private target path; returns seconds, peak MB, the per-node
    seconds, statuses and failure counts from run_results.json, and dbt's exit code. Raises with
    dbt's output when dbt fails, unless `check` is false."""
    env = {**dbt_env(), "SALESOPS_HOME": str(home), "SALESOPS_EMAIL_SALT": SALT}
    cmd = [dbt_executable(), *args, "--project-dir", str(project_dir)]
    cmd += ["--profiles-dir", str(PROFILES_DIR), "--target-path", str(target)]
    cmd += ["--log-path", str(target / "logs")]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    stop, peak = threading.Event(), []
    sampler = threading.Thread(target=_peak_rss_mb, args=(proc.pid, stop, peak))
    sampler.start()
    output, _ = proc.communicate()
    stop.set()
    sampler.join()
    seconds = time.monotonic() - started
    if check and proc.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{output[-6000:]}")
    run_results = target / "run_results.json"
    results = json.loads(run_results.read_text())["results"] if run_results.exists() else []
    return {
        "seconds": seconds,
        "peak_mb": peak[0] if peak else 0.0,
        "nodes": {r["unique_id"]: r["execution_time"] for r in results},
        "status": {r["unique_id"]: r["status"] for r in results},
        "failures": {r["unique_id"]: r.get("failures") for r in results},
        "returncode": proc.returncode,
        "log": output,
    }


def snapshot_tables(warehouse: Path, models: dict[str, str], schema: str) -> None:
    """Copy the models' tables into `schema` (to compare them after a rebuild)."""
    con = duckdb.connect(str(warehouse))
    try:
        _sql(con, f"create schema if not exists {schema}")
        for name, model_schema in models.items():
            _sql(
                con,
                f"create or replace table {schema}.{name} as select * from {model_schema}.{name}",
            )
    finally:
        con.close()


def changed_opportunities(warehouse: Path) -> dict[str, int | None]:
    """Per incremental model: opportunities its last build recomputed (None: full build)."""
    con = duckdb.connect(str(warehouse))
    try:
        rows = _sql(con, "select model, changed_opportunities from intermediate.incremental_state")
    finally:
        con.close()
    return {model.split(".")[-1]: n for model, n in rows}


def differences(warehouse: Path, models: dict[str, str], schema: str) -> dict[str, tuple]:
    """Per model: (rows, rows only in `schema`'s copy, rows only in the current table),
    EXCEPT ALL both ways on every column."""
    out = {}
    con = duckdb.connect(str(warehouse))
    try:
        for name, model_schema in models.items():
            a, b = f"{schema}.{name}", f"{model_schema}.{name}"
            rows = con.execute(f"select count(*) from {b}").fetchall()[0][0]
            only_a = con.execute(
                f"select count(*) from (select * from {a} except all select * from {b})"
            ).fetchall()[0][0]
            only_b = con.execute(
                f"select count(*) from (select * from {b} except all select * from {a})"
            ).fetchall()[0][0]
            out[name] = (rows, only_a, only_b)
    finally:
        con.close()
    return out
