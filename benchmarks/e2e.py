"""End-to-end scale benchmark: the whole weekly pipeline vs the floor of the same work.

    .venv/bin/python -m benchmarks.e2e --scale small|medium|large [--skip-floor]
        [--skip-incremental] [--quality-engine gx|sql] [--cold-dbt-parse] [--out DIR] [--keep]
        [--save-full DIR | --incremental-from DIR]

One run, side by side:

* emulator   a spawned process generates the org at `--scale` (ending 7 days ago) and its marketing
             landing files (into the benchmark's SALESOPS_HOME), then serves it over HTTPS like a
             remote Salesforce (its CPU and memory are not counted as the pipeline's).
* dbt parse  untimed, for this SALESOPS_HOME into a private DBT_TARGET_PATH (as `make manifest`
             does for a deployment), unless --cold-dbt-parse.
* full       the `weekly_pipeline` job executed in-process (orchestration.demo.run_pipeline) in a
             fresh SALESOPS_HOME (temp dir).
* floor      in a fresh subprocess: the same Salesforce pages (same SOQL, same page size, REST
             or Bulk as the pipeline chose) fetched with raw requests and parsed (orjson /
             pyarrow CSV), nothing loaded; then, against a copy of the warehouse the full run
             left, in one DuckDB connection: the marketing files read into tables, the quality
             checks' SQL (quality_checks.sql_engine.count per raw table), the compiled SQL of
             every dbt model and test of the full run (run_results.json compiled_code, same
             order), the journeys grouped into paths (attribution), the same ETS/ARIMA fits a
             cold run makes on the same series (forecast, forecasts.floor), the forecast rows
             written to Parquet + CSV (export), the marts copied into a new file (publish).
* incremental  `sandbox.org.advance(org, 7)` served (set_org), then the same job again in the same
             home (next week's partition).

To work on the incremental run without paying the full one each time: `--save-full DIR` copies the
home right after the full run into DIR (with the full run's report); `--incremental-from DIR`
restores it at its original path, regenerates the same org (same scale, seed and end), advances
it and measures only the incremental run (its ratio is against the saved full run).

Per stage (from Dagster's STEP_START / STEP_SUCCESS event timestamps): wall seconds, peak RSS of
this process plus its children (dbt subprocesses), excluding the emulator, sampled every 0.25 s
from /proc (psutil is not needed), mean load average, and rows/s. Prints the table and writes
`<out>/e2e-<scale>-<UTC timestamp>.json` with machine info.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")
# stages whose wall time is the sum of their steps, in pipeline order ("other": steps no stage
# claims); extract and load are reported too, as a split of extract+load
STEP_STAGES = (
    "extract+load",
    "marketing",
    "quality",
    "dbt",
    "attribution",
    "forecast",
    "export",
    "publish",
    "other",
)
STAGES = ("extract", "load", *STEP_STAGES[:-1])

log = logging.getLogger("benchmarks.e2e")


# -- memory / load sampling ------------------------------------------------------------------------
def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command may contain spaces/parentheses: ppid is the 2nd field after the last ')'
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(name))
    return out


def descendants(root: int, exclude: set[int]) -> list[int]:
    kids = _children_map()
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in exclude:
            continue
        out.append(pid)
        stack.extend(kids.get(pid, []))
    return out


def _load1() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return float("nan")


class Sampler(threading.Thread):
    """Samples (time, RSS of this process + descendants, RSS of this process, load1)."""

    def __init__(self, interval: float = 0.25, exclude: set[int] | None = None) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.interval = interval
        self.exclude = exclude or set()
        self.samples: list[tuple[float, int, int, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.is_set():
            pids = descendants(me, self.exclude)
            own = _rss_bytes(me)
            total = own + sum(_rss_bytes(p) for p in pids if p != me)
            self.samples.append((time.time(), total, own, _load1()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def window(self, intervals: list[tuple[float, float]]) -> dict[str, float | None]:
        picked = [s for s in self.samples if any(a <= s[0] <= b for a, b in intervals)]
        if not picked:  # a stage shorter than one sample interval: nearest sample after it starts
            starts = [a for a, _ in intervals]
            after = [s for s in self.samples if starts and s[0] >= min(starts)]
            picked = after[:1]
        if not picked:
            return {"peak_mb": None, "peak_own_mb": None, "load1": None}
        return {
            "peak_mb": max(s[1] for s in picked) / 2**20,
            "peak_own_mb": max(s[2] for s in picked) / 2**20,
            "load1": sum(s[3] for s in picked) / len(picked),
        }


# -- the emulator process --------------------------------------------------------------------------
def _serve(scale: str, seed: int, end: str, landing: str, conn) -> None:  # child process
    logging.basicConfig(level=logging.WARNING)
    from sandbox.api import SandboxServer
    from sandbox.marketing import generate_marketing, write_landing
    from sandbox.org import advance, generate

    t0 = time.perf_counter()
    org = generate(scale, seed=seed, end=end)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mkt = generate_marketing(org, seed=seed)
    write_landing(mkt, landing)
    mkt_rows = {k: t.num_rows for k, t in mkt.items()}
    del mkt
    mkt_s = time.perf_counter() - t0
    with SandboxServer(org, page_size=2000) as srv:
        conn.send(
            {
                "credentials": srv.credentials,
                "as_of": org.as_of.isoformat(),
                "counts": {k: t.num_rows for k, t in org.tables.items()},
                "generate_s": gen_s,
                "marketing_s": mkt_s,
                "marketing_rows": mkt_rows,
                "peak_rss_mb": _vm("VmHWM"),
            }
        )
        while True:
            cmd = conn.recv()
            if cmd == "stop":
                break
            if cmd.startswith("advance:"):
                t0 = time.perf_counter()
                org = advance(org, float(cmd.split(":", 1)[1]))
                srv.set_org(org)
                conn.send(
                    {
                        "as_of": org.as_of.isoformat(),
                        "counts": {k: t.num_rows for k, t in org.tables.items()},
                        "advance_s": time.perf_counter() - t0,
                        "changes": (org.truth.get("advances") or [{}])[-1],
                    }
                )


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Emulator:
    def __init__(self, scale: str, seed: int, end: str, landing: Path) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve, args=(scale, seed, end, str(landing), child), daemon=True
        )
        self.proc.start()
        if not self.conn.poll(3600):
            raise RuntimeError("the emulator process did not start within an hour")
        self.info: dict = self.conn.recv()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def advance(self, days: float) -> dict:
        self.conn.send(f"advance:{days}")
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send("stop")
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.terminate()


# -- one measured pipeline run ---------------------------------------------------------------------
def stage_of(step_key: str) -> str:
    if step_key == "salesforce_extract":
        return "extract+load"
    if step_key == "marketing_landing_files":
        return "marketing"
    if step_key.endswith("_data_quality_gate") or step_key == "reports__data_quality_report":
        return "quality"
    if step_key.startswith("salesops_dbt_assets"):
        return "dbt"
    if step_key.startswith("attribution"):
        return "attribution"
    if step_key.startswith("forecasts__"):
        return "forecast"
    if "finance_forecast_export" in step_key or "executive_report" in step_key:
        return "export"
    if step_key == "reports__analyst_marts":
        return "publish"
    return "other"


def _meta_value(v: Any) -> Any:
    return getattr(v, "value", v)


def _dlt_split() -> dict[str, float]:
    """Seconds of dlt's extract / normalize / load steps in the last Salesforce pipeline run."""
    from dlt.pipeline.trace import load_trace

    from orchestration.settings import paths

    trace = load_trace(str(paths().dlt_pipelines / "salesforce"))
    out: dict[str, float] = {}
    for step in getattr(trace, "steps", []) or []:
        if step.started_at and step.finished_at:
            out[step.step] = (step.finished_at - step.started_at).total_seconds()
    return out


def _dbt_nodes(run_id: str) -> dict:
    """run_results.json of this run's dbt invocation: elapsed and per-node times."""
    target = Path(os.environ.get("DBT_TARGET_PATH") or ROOT / "dbt_project" / "target")
    dirs = sorted(target.glob(f"salesops_dbt_assets-{run_id[:7]}-*"))
    if not dirs or not (dirs[-1] / "run_results.json").exists():
        return {}
    rr = json.loads((dirs[-1] / "run_results.json").read_text())
    nodes = [
        {
            "unique_id": r["unique_id"],
            "status": r["status"],
            "seconds": r["execution_time"],
        }
        for r in rr["results"]
    ]
    by_kind: dict[str, float] = {}
    for n in nodes:
        kind = n["unique_id"].split(".")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + n["seconds"]
    return {
        "target_dir": str(dirs[-1]),
        "elapsed_s": rr.get("elapsed_time"),
        "seconds_by_kind": by_kind,
        "nodes": sorted(nodes, key=lambda n: -n["seconds"]),
    }


def _warehouse_rows() -> dict[str, int]:
    import duckdb

    from orchestration.settings import paths

    con = duckdb.connect(str(paths().warehouse), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_name not like '\\_dlt%' escape '\\'"
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
            for s, t in tables
        }
    finally:
        con.close()


def measured_run(label: str, partition_key: str, sampler: Sampler) -> dict:
    from dagster import DagsterInstance

    from orchestration.demo import run_pipeline
    from orchestration.jobs import WEEKLY_JOB

    print(f"[e2e] {label} run: weekly_pipeline, partition {partition_key} ...", flush=True)
    t0 = time.time()
    result = run_pipeline(WEEKLY_JOB, partition_key)
    t1 = time.time()
    steps: dict[str, dict] = {}
    rows_loaded = 0
    rows_checked = 0
    api: dict[str, str] = {}
    checks_failed: list[str] = []
    run_start = run_end = None
    events = 0
    with DagsterInstance.get() as instance:
        for entry in instance.all_logs(result.run_id):
            events += 1
            ev = entry.dagster_event
            if ev is None:
                continue
            kind = ev.event_type_value
            if kind in ("RUN_START", "PIPELINE_START"):
                run_start = entry.timestamp
            elif kind in ("RUN_SUCCESS", "RUN_FAILURE", "PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
                run_end = entry.timestamp
            key = entry.step_key
            if key is None:
                continue
            s = steps.setdefault(key, {"stage": stage_of(key), "status": None})
            if kind == "STEP_START":
                s["start"] = entry.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                s["end"] = entry.timestamp
                s["status"] = kind
            elif kind == "ASSET_MATERIALIZATION" and key == "salesforce_extract":
                md = entry.asset_materialization.metadata
                rows_loaded += int(_meta_value(md.get("rows_loaded", 0)) or 0)
                obj = entry.asset_materialization.asset_key.path[-1]
                api[obj] = str(_meta_value(md.get("api", "")))
            elif kind == "ASSET_CHECK_EVALUATION":
                data = ev.event_specific_data
                rows_checked += int(_meta_value(data.metadata.get("rows", 0)) or 0)
                if not data.passed and getattr(data.severity, "value", "") == "ERROR":
                    checks_failed.append(data.asset_key.to_user_string())
    stages: dict[str, dict] = {}
    for s in steps.values():
        if "start" not in s:
            continue
        st = stages.setdefault(s["stage"], {"wall_s": 0.0, "steps": 0, "intervals": []})
        end = s.get("end", t1)
        st["wall_s"] += end - s["start"]
        st["steps"] += 1
        st["intervals"].append((s["start"], end))
    split = _dlt_split()
    el = stages.get("extract+load")
    if el:
        ex = split.get("extract", 0.0)
        a, b = el["intervals"][0]
        stages["extract"] = {"wall_s": ex, "steps": 0, "intervals": [(a, min(b, a + ex))]}
        stages["load"] = {"wall_s": el["wall_s"] - ex, "steps": 0, "intervals": [(a + ex, b)]}
    for st in stages.values():
        st.update(sampler.window(st["intervals"]))
        st["intervals"] = [(round(a - t0, 3), round(b - t0, 3)) for a, b in st["intervals"]]
    wh_rows = _warehouse_rows()
    raw_rows = sum(v for k, v in wh_rows.items() if k.split(".")[0] in ("salesforce", "marketing"))
    rows = {
        "extract": rows_loaded,
        "load": rows_loaded,
        "extract+load": rows_loaded,
        "marketing": wh_rows.get("marketing.touchpoints", 0) + wh_rows.get("marketing.ad_spend", 0),
        "quality": rows_checked,
        "dbt": raw_rows,
        "attribution": wh_rows.get("intermediate.int_opportunity_journeys", 0),
        "publish": sum(v for k, v in wh_rows.items() if k.startswith("marts.")),
    }
    for name, n in rows.items():
        if name in stages and n and stages[name]["wall_s"] > 0:
            stages[name]["rows"] = n
            stages[name]["rows_per_s"] = n / stages[name]["wall_s"]
    whole = sampler.window([(t0, t1)])
    out = {
        "success": result.success,
        "run_id": result.run_id,
        "partition_key": partition_key,
        "wall_s": t1 - t0,
        "run_s": (run_end - run_start) if run_start and run_end else None,
        "steps_s": sum(s["wall_s"] for k, s in stages.items() if k in STEP_STAGES),
        "peak_mb": whole["peak_mb"],
        "load1": whole["load1"],
        "stages": stages,
        "dlt_split_s": split,
        "dbt": _dbt_nodes(result.run_id),
        "api": api,
        "rows_loaded": rows_loaded,
        "blocking_checks_failed": checks_failed,
        "steps_failed": [k for k, s in steps.items() if s["status"] != "STEP_SUCCESS"],
        "step_s": {
            k: round(s["end"] - s["start"], 3)
            for k, s in steps.items()
            if "start" in s and "end" in s
        },
        # every event (and context.log line) is a write to the run's event log
        "dagster_events": events,
        "warehouse_rows": wh_rows,
        "warehouse_mb": _file_mb(),
    }
    print(
        f"[e2e] {label} run: {'SUCCESS' if result.success else 'FAILURE'} in {t1 - t0:.1f}s "
        f"(peak {whole['peak_mb'] or 0:.0f} MB, load {whole['load1'] or 0:.1f})",
        flush=True,
    )
    return out


def _file_mb() -> float:
    from orchestration.settings import paths

    p = paths().warehouse
    return p.stat().st_size / 2**20 if p.exists() else 0.0


# -- the floor (runs in a fresh subprocess) --------------------------------------------------------
def _floor_extract(api: dict[str, str], batch_size: int, bulk_rows: int) -> dict:
    import io

    import orjson
    import pyarrow.csv as pacsv

    from assets.salesforce.client import SalesforceClient
    from assets.salesforce.fields import CURSOR_FIELD, plan_object
    from sandbox.schema import OBJECT_NAMES

    t0 = time.perf_counter()
    client = SalesforceClient()
    session, base = client.session, client.base_url
    from assets.salesforce.soql import build_select

    rows = pages = 0
    per_object: dict[str, float] = {}
    for obj in OBJECT_NAMES:
        t = time.perf_counter()
        plan = plan_object(obj, client.describe(obj))
        auth = {"Authorization": f"Bearer {client._token}"}
        cursor = CURSOR_FIELD if plan.has_cursor else None
        if api.get(plan.table_name) == "bulk":
            soql = build_select(obj, plan.fields, cursor, None)
            job = session.post(
                f"{base}/jobs/query",
                json={
                    "operation": "queryAll" if plan.deletable else "query",
                    "query": soql,
                    "contentType": "CSV",
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                },
                headers=auth,
            ).json()
            url = f"{base}/jobs/query/{job['id']}"
            while session.get(url, headers=auth).json().get("state") != "JobComplete":
                time.sleep(0.05)
            locator = None
            while True:
                params: dict[str, Any] = {"maxRecords": bulk_rows}
                if locator:
                    params["locator"] = locator
                resp = session.get(f"{url}/results", params=params, headers=auth)
                tbl = pacsv.read_csv(
                    io.BytesIO(resp.content),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                )
                rows += tbl.num_rows
                pages += 1
                locator = resp.headers.get("Sforce-Locator")
                if not locator or locator == "null":
                    break
            session.delete(url, headers=auth)
        else:
            order = (CURSOR_FIELD, "Id") if plan.has_cursor else ("Id",)
            soql = build_select(obj, plan.fields, cursor, None, order)
            headers = {**auth, "Sforce-Query-Options": f"batchSize={batch_size}"}
            endpoint = "queryAll" if plan.deletable else "query"
            resp = session.get(f"{base}/{endpoint}", params={"q": soql}, headers=headers)
            while True:
                body = orjson.loads(resp.content)
                rows += len(body["records"])
                pages += 1
                if body.get("done", True):
                    break
                resp = session.get(client.instance_url + body["nextRecordsUrl"], headers=headers)
        per_object[obj] = time.perf_counter() - t
    client.close()
    return {
        "seconds": time.perf_counter() - t0,
        "rows": rows,
        "pages": pages,
        "objects": per_object,
    }


def _floor_sql(spec: dict, con, mark) -> None:
    """Marketing, quality, dbt, attribution, forecast, export and publish floors, in order."""

    from quality_checks import sql_engine, store
    from quality_checks.rules import QualityConfig, all_raw_specs

    landing = Path(spec["landing"])
    # marketing: every landing file read into a table of the warehouse (values as text, as the
    # loader reads them), no validation, hashing or quarantine
    con.execute("create schema floor_marketing")
    n = 0
    for kind in ("ad_spend", "touchpoints"):
        for i, f in enumerate(sorted((landing / kind).glob("*"))):
            if f.suffix == ".parquet":
                src = f"read_parquet('{f}')"
            elif f.suffix == ".csv":
                src = f"read_csv('{f}', all_varchar = true, header = true)"
            else:
                continue
            con.execute(f"create table floor_marketing.{kind}_{i} as select * from {src}")
            n += con.execute(f"select count(*) from floor_marketing.{kind}_{i}").fetchone()[0]
    con.execute("checkpoint")
    mark("marketing", n)

    # quality: the SQL engine's passes over every raw table, nothing written
    config = QualityConfig(
        as_of=dt.datetime.fromisoformat(spec["as_of"]), picklists=store.read_picklists(con)
    )
    tables = sql_engine.existing_tables(con)
    n = 0
    for s in all_raw_specs(config):
        cols = sql_engine.table_columns(con, s)
        if cols is None:
            continue
        s, _ = sql_engine.applicable(s, cols, tables)
        n += sql_engine.count(con, s).rows
        sql_engine.drop_temp(con)
    mark("quality", n)

    # dbt: every model and test of the full run's dbt build, in its completion order
    if not spec.get("run_results") or not Path(spec["run_results"]).exists():
        return  # dbt did not run (blocked upstream): nothing downstream to compare with
    rr = json.loads(Path(spec["run_results"]).read_text())
    manifest = json.loads(Path(spec["manifest"]).read_text())
    per_node: dict[str, float] = {}
    for r in rr["results"]:
        uid, code = r["unique_id"], r.get("compiled_code")
        kind = uid.split(".")[0]
        if not code or kind not in ("model", "test"):
            continue
        t = time.perf_counter()
        if kind == "model":
            node = manifest["nodes"][uid]
            mat = node["config"]["materialized"]
            rel = node["relation_name"]
            if mat == "view":
                con.execute(f"create or replace view {rel} as (\n{code}\n)")
            elif mat in ("table", "incremental"):
                # an incremental model's first build (the full run's) is its whole select
                con.execute(f"create or replace table {rel} as (\n{code}\n)")
            else:  # ephemeral: compiled into its children
                continue
        else:
            con.execute(f"select count(*) from (\n{code}\n) as t").fetchall()
        per_node[uid] = time.perf_counter() - t
    con.execute("checkpoint")  # dbt's connections close (and checkpoint) before the next step
    mark("dbt", len(per_node), extra={"nodes": per_node})

    # attribution: the journeys grouped into ordered channel paths
    con.execute(
        "select opportunity_id, list(channel order by touch_position) as path "
        "from intermediate.int_opportunity_journeys group by 1"
    ).to_arrow_table()
    mark("attribution", 0)

    # forecast: the same ETS/ARIMA fits (+ seasonal naive) a cold run makes, on the same series,
    # one SQL query per fit origin, in a plain loop: no fit cache, selection, ledger or writes
    # (benchmarks.forecast.floor_on -> forecasts.floor.direct_fits)
    from benchmarks.forecast import floor_on

    mark("forecast", floor_on(con, "weekly", spec["partition_key"]))

    # export: the latest weekly forecast rows to Parquet and CSV
    out = Path(spec["scratch"])
    out.mkdir(parents=True, exist_ok=True)
    q = (
        "select * from forecasts.forecasts where cadence = 'weekly' and as_of = "
        "(select max(as_of) from forecasts.forecasts where cadence = 'weekly')"
    )
    con.execute(f"copy ({q}) to '{out / 'f.parquet'}' (format parquet)")
    con.execute(f"copy ({q}) to '{out / 'f.csv'}' (header)")
    mark("export", 0)

    # publish: every marts table and view (the data-driven attribution rows are a view the
    # publish materializes) copied into a new DuckDB file
    pub = out / "marts_floor.duckdb"
    con.execute(f"attach '{pub}' as pub")
    con.execute("create schema pub.marts")
    names = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'warehouse' "
            "and table_schema = 'marts' and table_type in ('BASE TABLE', 'VIEW')"
        ).fetchall()
    ]
    for name in names:
        con.execute(f'create table pub.marts."{name}" as select * from marts."{name}"')
    con.execute("detach pub")
    mark("publish", len(names))


def floor_child(spec_path: str) -> None:
    import duckdb

    spec = json.loads(Path(spec_path).read_text())
    sampler = Sampler()
    sampler.start()
    out: dict[str, dict] = {}
    last = [time.time()]

    def mark(stage: str, rows: int, extra: dict | None = None) -> None:
        now = time.time()
        w = sampler.window([(last[0], now)])
        out[stage] = {"wall_s": now - last[0], "rows": rows, **w, **(extra or {})}
        last[0] = now

    res = _floor_extract(spec["api"], spec["batch_size"], spec["bulk_rows"])
    mark("extract+load", res["rows"], extra={"pages": res["pages"], "objects": res["objects"]})
    con = duckdb.connect(spec["warehouse"])
    try:
        con.execute("set TimeZone = 'UTC'")
        last[0] = time.time()
        _floor_sql(spec, con, mark)
    finally:
        con.close()
    sampler.stop()
    out["_peak_rss_mb"] = {"wall_s": 0.0, "peak": _vm("VmHWM")}
    print("RESULT " + json.dumps(out), flush=True)


def run_floor(spec: dict, work: Path) -> dict:
    path = work / "floor_spec.json"
    path.write_text(json.dumps(spec))
    print("[e2e] floor: raw page fetch + parse, then the same SQL in one DuckDB ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.e2e", "--child-floor", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            print(f"[e2e] floor done in {time.perf_counter() - t0:.1f}s", flush=True)
            return out
    raise RuntimeError(f"floor failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def prepare_dbt_target(target: Path) -> None:
    """`dbt parse` for this SALESOPS_HOME into a private target folder (DBT_TARGET_PATH).

    dagster-dbt copies `$DBT_TARGET_PATH/partial_parse.msgpack` into each invocation's target, but
    dbt discards it when the rendered profile differs, and the profile renders SALESOPS_HOME: a
    deployment parses once with its own home (`make manifest`), so the benchmark does the same
    (untimed) instead of paying a full parse per run. A private folder also keeps this run's
    artifacts apart from other users of dbt_project/target.
    """
    from assets.dbt.project import run_dbt_parse

    target.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = run_dbt_parse(target)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    os.environ["DBT_TARGET_PATH"] = str(target)
    print(f"[e2e] dbt parse for this SALESOPS_HOME in {time.perf_counter() - t0:.1f}s", flush=True)


# -- report ----------------------------------------------------------------------------------------
def machine_info() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20

    def ver(pkg: str) -> str | None:
        try:
            return importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            p: ver(p)
            for p in (
                "duckdb",
                "dagster",
                "dagster-dbt",
                "dbt-core",
                "dbt-duckdb",
                "dlt",
                "pyarrow",
                "great-expectations",
            )
        },
        "loadavg_start": os.getloadavg(),
    }


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def summarize(report: dict) -> list[str]:
    full, inc, floor = report.get("full"), report.get("incremental"), report.get("floor") or {}
    lines = [
        f"{'stage':<13} {'full s':>8} {'incr s':>8} {'floor s':>8} {'full/floor':>10} "
        f"{'peak MB':>8} {'incr MB':>8} {'floor MB':>8} {'rows/s':>9} {'load':>5}"
    ]

    def stage(run: dict | None, name: str) -> dict:
        return (run or {}).get("stages", {}).get(name, {})

    for name in (*STAGES, "other"):
        f, i, fl = stage(full, name), stage(inc, name), floor.get(name, {})
        if not f and not i:
            continue
        ratio = f["wall_s"] / fl["wall_s"] if f.get("wall_s") and fl.get("wall_s") else None
        label = {"extract": "  extract", "load": "  load"}.get(name, name)
        lines.append(
            f"{label:<13} {_f(f.get('wall_s')):>8} {_f(i.get('wall_s')):>8} "
            f"{_f(fl.get('wall_s'), '{:.2f}'):>8} {_f(ratio, '{:.2f}x'):>10} "
            f"{_f(f.get('peak_mb'), '{:.0f}'):>8} {_f(i.get('peak_mb'), '{:.0f}'):>8} "
            f"{_f(fl.get('peak_mb'), '{:.0f}'):>8} {_f(f.get('rows_per_s'), '{:,.0f}'):>9} "
            f"{_f(f.get('load1')):>5}"
        )
    floor_total = sum(v["wall_s"] for k, v in floor.items() if k in STEP_STAGES)
    if full:
        lines.append(
            f"{'steps total':<13} {_f(full['steps_s']):>8} {_f((inc or {}).get('steps_s')):>8} "
            f"{_f(floor_total or None, '{:.2f}'):>8} "
            f"{_f(full['steps_s'] / floor_total if floor_total else None, '{:.2f}x'):>10} "
            f"{_f(full['peak_mb'], '{:.0f}'):>8} {_f((inc or {}).get('peak_mb'), '{:.0f}'):>8}"
        )
        lines.append(
            f"{'run wall':<13} {_f(full['wall_s']):>8} {_f((inc or {}).get('wall_s')):>8}"
            "   (execute_in_process, incl. run start/stop)"
        )
    r = report["ratios"]
    lines.append("")
    lines.append(
        f"overall full/floor (steps): {_f(r.get('full_over_floor'), '{:.2f}x')}   "
        f"without forecast: {_f(r.get('data_stages_over_floor'), '{:.2f}x')}   "
        f"incremental/full (run wall): {_f(r.get('incremental_over_full'), '{:.1%}')}   "
        f"peak MB (full run, incl. dbt): {_f(full['peak_mb'] if full else None, '{:.0f}')}"
    )
    return lines


def _positive_days(text: str) -> float:
    days = float(text)
    if not days > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (the org only moves forward), got {text}")
    return days


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="small", choices=("small", "medium", "large"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--skip-incremental", action="store_true")
    ap.add_argument(
        "--days",
        type=_positive_days,
        default=7.0,
        help="days of org changes before the incremental run (> 0; 0.01: a near-empty change set)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keep", action="store_true", help="keep the temp SALESOPS_HOME")
    ap.add_argument(
        "--quality-engine",
        choices=("gx", "sql"),
        default=os.environ.get("SALESOPS_QUALITY_ENGINE", "gx"),
        help="engine of the quality gate (SALESOPS_QUALITY_ENGINE; default gx)",
    )
    ap.add_argument(
        "--cold-dbt-parse",
        action="store_true",
        help="do not prepare dbt's partial parse for this SALESOPS_HOME (each dbt run re-parses)",
    )
    ap.add_argument("--save-full", type=Path, help="copy the home after the full run into DIR")
    ap.add_argument(
        "--incremental-from",
        type=Path,
        help="restore a --save-full DIR and measure only the incremental run",
    )
    ap.add_argument("--child-floor", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_floor:
        logging.basicConfig(level=logging.WARNING)
        floor_child(args.child_floor)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(name)s] %(message)s")

    started = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    out_path = args.out / f"e2e-{args.scale}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"

    def save(report: dict, partial: bool = False) -> Path:
        """Write the JSON (also after each phase, marked partial, so a stopped run keeps data)."""
        if partial:
            report["partial"] = True
        out_path.write_text(json.dumps(report, indent=2, default=str))
        return out_path

    saved: dict | None = None
    if args.incremental_from:
        saved = json.loads((args.incremental_from / "full.json").read_text())
        args.scale, args.seed = saved["scale"], saved["seed"]
        out_path = args.out / f"e2e-{args.scale}-{started.strftime('%Y%m%dT%H%M%SZ')}-incr.json"
        work = Path(saved["work_dir"])
        if work.exists():
            raise SystemExit(f"{work} exists: remove it (or wait for the run using it)")
        home = work / "home"
        print(f"[e2e] restoring {args.incremental_from / 'home'} to {home} ...", flush=True)
        shutil.copytree(args.incremental_from / "home", home, symlinks=True)
    else:
        work = Path(tempfile.mkdtemp(prefix=f"salesops-bench-e2e-{args.scale}-"))
        home = work / "home"
        home.mkdir()
    os.environ["SALESOPS_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    os.environ["SALESOPS_QUALITY_ENGINE"] = args.quality_engine
    for k in [k for k in os.environ if k.startswith("SALESFORCE_")]:
        os.environ.pop(k)
    from assets.dbt.project import prepare_manifest
    from orchestration.schedules import weekly_partition_key
    from orchestration.settings import paths

    prepare_manifest()
    if not args.cold_dbt_parse:
        prepare_dbt_target(work / "dbt_target")
    report: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "quality_engine": args.quality_engine,
        "freshness_days": os.environ.get("SALESOPS_QUALITY_FRESHNESS_DAYS", "per table"),
        "dbt_partial_parse": not args.cold_dbt_parse,
        "started_at": started.isoformat(),
        "machine": machine_info(),
        "ratios": {},
    }
    end = saved["end"] if saved else (started - dt.timedelta(days=args.days)).date().isoformat()
    print(
        f"[e2e] scale {args.scale}; work dir {work}; generating the org (end {end}) ...", flush=True
    )
    t0 = time.perf_counter()
    # a restored home has its landing files already: the regenerated ones go elsewhere
    landing = work / "landing-regenerated" if saved else paths().landing_marketing
    emu = Emulator(args.scale, args.seed, end, landing)
    info = emu.info
    report["org"] = {
        k: info[k]
        for k in ("as_of", "counts", "generate_s", "marketing_s", "marketing_rows", "peak_rss_mb")
    }
    report["org"]["rows"] = sum(info["counts"].values())
    print(
        f"[e2e] org: {report['org']['rows']:,} rows in {info['generate_s']:.1f}s, marketing "
        f"{sum(info['marketing_rows'].values()):,} rows in {info['marketing_s']:.1f}s "
        f"(emulator ready after {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    sampler = Sampler(exclude={emu.pid})
    sampler.start()
    try:
        os.environ.update(info["credentials"])
        as_of = dt.datetime.fromisoformat(info["as_of"])
        os.environ["SALESOPS_AS_OF"] = as_of.isoformat()
        if saved:
            full = report["full"] = saved["full"]
            report["full_from"] = str(args.incremental_from)
        else:
            full = measured_run("full", weekly_partition_key(as_of), sampler)
            report["full"] = full
            save(report, partial=True)
        if args.save_full and not saved:
            print(f"[e2e] saving the home after the full run into {args.save_full} ...", flush=True)
            shutil.rmtree(args.save_full, ignore_errors=True)
            shutil.copytree(home, args.save_full / "home", symlinks=True)
            meta = {"scale": args.scale, "seed": args.seed, "end": end, "work_dir": str(work)}
            saved_report = json.dumps({**meta, "full": full}, default=str)
            (args.save_full / "full.json").write_text(saved_report)
        if not args.skip_floor and not saved:
            copy = work / "floor" / "warehouse.duckdb"
            copy.parent.mkdir()
            shutil.copyfile(paths().warehouse, copy)
            dbt = full.get("dbt") or {}
            target = Path(dbt["target_dir"]) if dbt.get("target_dir") else None
            spec = {
                "warehouse": str(copy),
                "landing": str(paths().landing_marketing),
                "as_of": as_of.isoformat(),
                "api": full["api"],
                "batch_size": int(os.environ.get("SALESOPS_SF_BATCH_SIZE", 2000)),
                "bulk_rows": int(os.environ.get("SALESOPS_SF_BULK_PAGE_ROWS", 50_000)),
                "run_results": str(target / "run_results.json") if target else None,
                "manifest": str(target / "manifest.json") if target else None,
                "scratch": str(work / "floor" / "scratch"),
                "partition_key": full["partition_key"],
            }
            try:
                report["floor"] = run_floor(spec, work)
                save(report, partial=True)
            except RuntimeError as exc:  # report what the pipeline did even if the floor broke
                print(f"[e2e] floor FAILED: {exc}", flush=True)
                report["floor_error"] = str(exc)[-4000:]
            copy.unlink(missing_ok=True)
        if not args.skip_incremental:
            adv = emu.advance(args.days)
            report["advance"] = {k: adv[k] for k in ("as_of", "advance_s", "changes")}
            new_as_of = dt.datetime.fromisoformat(adv["as_of"])
            os.environ["SALESOPS_AS_OF"] = new_as_of.isoformat()
            report["incremental"] = measured_run(
                "incremental", weekly_partition_key(new_as_of), sampler
            )
    finally:
        sampler.stop()
        emu.stop()
        report["machine"]["loadavg_end"] = os.getloadavg()
        report["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            report["work_dir"] = str(work)

    full = report.get("full") or {}
    inc = report.get("incremental") or {}
    floor = report.get("floor") or {}
    floor_total = sum(v["wall_s"] for k, v in floor.items() if k in STEP_STAGES)
    if floor_total:
        report["ratios"]["full_over_floor"] = full["steps_s"] / floor_total
        report["floor_total_s"] = floor_total
        data = [k for k in STEP_STAGES if k != "forecast" and k in floor]
        fl = sum(floor[k]["wall_s"] for k in data)
        if fl:
            ours = sum(full["stages"].get(k, {}).get("wall_s", 0.0) for k in data)
            report["ratios"]["data_stages_over_floor"] = ours / fl
    if inc and full:
        report["ratios"]["incremental_over_full"] = inc["wall_s"] / full["wall_s"]
    lines = summarize(report)
    print()
    print(
        f"salesops e2e benchmark, scale {args.scale}: {report['org']['rows']:,} org rows; "
        f"{report['machine']['cpu_count']} CPUs, load average "
        f"{report['machine']['loadavg_start'][0]:.1f} -> {report['machine']['loadavg_end'][0]:.1f}"
    )
    print("\n".join(lines))
    dbt = full.get("dbt") or {}
    if dbt.get("nodes"):
        fl_nodes = (floor.get("dbt") or {}).get("nodes", {})
        print("\nslowest dbt nodes (full run; floor = same SQL in one DuckDB):")
        for n in dbt["nodes"][:8]:
            fs = fl_nodes.get(n["unique_id"])
            print(f"  {n['seconds']:7.2f}s  floor {_f(fs, '{:.2f}s'):>7}  {n['unique_id']}")
        print(
            f"  dbt build elapsed {_f(dbt.get('elapsed_s'))}s of a "
            f"{_f(full['stages']['dbt']['wall_s'])}s "
            f"step; by kind: { {k: round(v, 1) for k, v in dbt['seconds_by_kind'].items()} }"
        )
    if (inc.get("dbt") or {}).get("nodes"):
        print("\nslowest dbt nodes (incremental run):")
        for n in inc["dbt"]["nodes"][:8]:
            print(f"  {n['seconds']:7.2f}s  {n['unique_id']}")
    report.pop("partial", None)
    path = save(report)
    print(f"\nwritten {path}")
    ok = full.get("success") and (not inc or inc.get("success"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
