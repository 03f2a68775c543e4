"""Marketing loader benchmark: full load, no-change rerun and the floors, side by side.

    .venv/bin/python -m benchmarks.marketing [--scale medium|large] [--home PATH] [--keep]

medium (default): generates the medium sandbox org and its landing files in a temp dir.
large: reads the landing files of an existing SALESOPS_HOME (`--home`, default the path in
/tmp/s2/LARGE_HOME, else $SALESOPS_HOME) without copying or writing them; the Lead/Contact
emails of that home's warehouse (opened read-only) are copied into the benchmark's own temp
warehouse so `touchpoints_matched` is computed as in a pipeline run.

Each step runs in its own fresh process (wall seconds and that process's peak RSS), in order:
  floor_read   every landing file read into an in-memory DuckDB table (values as the file has
               them) - the floor of benchmarks/e2e.py
  floor_write  the same tables created in a new DuckDB file (CREATE TABLE AS, same memory
               limit): reading plus writing the rows, without validating them
  full         `load_landing` into a fresh warehouse (holding only the Salesforce emails)
  no_change    `load_landing` again: every file unchanged
The 1-minute load average is printed before and after (the machine is shared; compare ratios
measured in one run, not wall times across runs). Each step also reports its CPU seconds (all
threads of its process): under a busy neighbour wall time stretches but CPU time much less, so
the CPU ratio to the read+write floor is the steadier figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

# files holding the path of a shared large SALESOPS_HOME (newest session first)
SHARED_LARGE_HOMES = (Path("/tmp/s3/LARGE_HOME"), Path("/tmp/s2/LARGE_HOME"))
SALT = "benchmark-salt"
FLOOR_MEMORY_LIMIT = "2500MB"


def _landing_files(landing: Path) -> list[tuple[str, Path]]:
    files = []
    for kind in ("ad_spend", "touchpoints"):
        for path in sorted((landing / kind).glob("*")):
            name = path.name
            if name.endswith((".csv", ".csv.gz", ".parquet")) and not name.startswith("."):
                files.append((kind, path))
    return files


def _source(path: Path) -> str:
    if path.name.endswith(".parquet"):
        return f"read_parquet('{path}')"
    return f"read_csv('{path}', all_varchar = true, header = true)"


def _peak_mb() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it does not carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds (user + system) of this process, all its threads: steadier than wall time
    on a shared machine (a busy neighbour stretches wall time, not the work done)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _floor(landing: str, target: str | None) -> dict:
    import duckdb

    from orchestration.settings import duckdb_config

    started, cpu = time.perf_counter(), _cpu()
    # In memory, capped below the helpers' 3 GB budget (at large the tables would otherwise
    # take ~4 GB; beyond the cap DuckDB spills, which would show as a slower floor).
    config = duckdb_config() if target else {"memory_limit": FLOOR_MEMORY_LIMIT}
    con = duckdb.connect(target or ":memory:", config=config)
    rows = 0
    for i, (kind, path) in enumerate(_landing_files(Path(landing))):
        con.execute(f"CREATE TABLE {kind}_{i} AS SELECT * FROM {_source(path)}")
        rows += con.execute(f"SELECT count(*) FROM {kind}_{i}").fetchone()[0]
    con.close()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu() - cpu,
        "rows": rows,
        "peak_rss_mb": _peak_mb(),
    }


def _load(landing: str, warehouse: str) -> dict:
    from assets.marketing.loader import load_landing

    started, cpu = time.perf_counter(), _cpu()
    reports = load_landing(Path(warehouse), Path(landing), salt=SALT)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "rows": sum(r.rows_read for r in reports.values()),
        "peak_rss_mb": _peak_mb(),
        "statuses": {k: [f.status for f in r.files] for k, r in reports.items()},
        "phases": {k: r.phases for k, r in reports.items()},
        "matched": reports["touchpoints"].matched_people if "touchpoints" in reports else None,
        "summary_reused": {k: r.summary_reused for k, r in reports.items()},
    }


def _in_process(fn, *args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def _prepare_medium(work: Path) -> tuple[Path, Path]:
    from sandbox.marketing import generate_marketing, write_landing
    from sandbox.org import generate, load_into_duckdb

    org = generate("medium")
    landing = work / "landing" / "marketing"
    write_landing(generate_marketing(org), landing)
    people = work / "people.duckdb"
    load_into_duckdb(org, people)
    return landing, people


def _prepare_large(home: Path, work: Path) -> tuple[Path, Path]:
    import duckdb

    landing = home / "landing" / "marketing"
    if not landing.is_dir():
        raise SystemExit(f"{landing} does not exist: --home must be a SALESOPS_HOME with landing")
    people = work / "people.duckdb"
    with duckdb.connect(str(people)) as con:
        con.execute(f"ATTACH '{home / 'warehouse.duckdb'}' AS src (READ_ONLY)")
        con.execute("CREATE SCHEMA salesforce")
        for table in ("lead", "contact"):
            con.execute(
                f"CREATE TABLE salesforce.{table} AS SELECT email FROM src.salesforce.{table}"
            )
    return landing, people


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.marketing", description=__doc__)
    parser.add_argument("--scale", choices=("medium", "large"), default="medium")
    parser.add_argument("--home", type=Path, help="SALESOPS_HOME whose landing files to read")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix=f"bench-marketing-{args.scale}-"))
    try:
        if args.scale == "medium":
            landing, people = _prepare_medium(work)
        else:
            home = args.home
            for pointer in SHARED_LARGE_HOMES:
                if home is None and pointer.exists():
                    home = Path(pointer.read_text().strip())
            home = home or Path(os.environ["SALESOPS_HOME"])
            landing, people = _prepare_large(home, work)
        size = sum(p.stat().st_size for _, p in _landing_files(landing))
        n_files = len(_landing_files(landing))
        print(f"[marketing] {args.scale}: {n_files} files, {size / 1e6:.0f} MB")
        print(f"[marketing] load average before: {os.getloadavg()[0]:.2f}")
        results = {}
        results["floor_read"] = _in_process(_floor, str(landing), None)
        results["floor_write"] = _in_process(_floor, str(landing), str(work / "floor.duckdb"))
        (work / "floor.duckdb").unlink(missing_ok=True)
        warehouse = work / "warehouse.duckdb"
        shutil.copy(people, warehouse)
        results["full"] = _in_process(_load, str(landing), str(warehouse))
        results["no_change"] = _in_process(_load, str(landing), str(warehouse))
        load_after = os.getloadavg()[0]
        print(f"[marketing] load average after: {load_after:.2f}")
        floor = results["floor_read"]["seconds"]
        floor_w = results["floor_write"]["seconds"]
        cpu_w = results["floor_write"]["cpu_seconds"]
        print(
            f"{'step':<12} {'rows':>12} {'seconds':>9} {'x read':>7} {'x r+w':>6} "
            f"{'cpu s':>7} {'cpu x r+w':>9} {'peak MB':>8}"
        )
        for step, r in results.items():
            print(
                f"{step:<12} {r['rows']:>12,} {r['seconds']:>9.2f} {r['seconds'] / floor:>7.2f} "
                f"{r['seconds'] / floor_w:>6.2f} {r['cpu_seconds']:>7.2f} "
                f"{r['cpu_seconds'] / cpu_w:>9.2f} {r['peak_rss_mb']:>8.0f}"
            )
        for step in ("full", "no_change"):
            print(f"{step} phases: {json.dumps(results[step]['phases'])}")
        print(f"full: {results['full']['statuses']}; matched {results['full']['matched']}")
        print(f"no_change: {results['no_change']['statuses']}")
        if args.out:
            args.out.write_text(json.dumps(results, indent=2, default=str))
    finally:
        if args.keep:
            print(f"[marketing] kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
