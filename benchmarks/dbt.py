"""dbt build: full vs incremental after one week of changes, and the incremental/full equality.

    .venv/bin/python -m benchmarks.dbt --scale medium [--home DIR] [--keep]

One run: generate an org (and its marketing touchpoints), load it the way dlt does, `dbt build`
(full, timed), `sandbox.org.advance(org, 7)` loaded the way dlt merges (changed rows replace old
ones by Id with a new `_dlt_load_id`; a few new touchpoints with a later `loaded_at`), `dbt build`
again (incremental, timed), then `dbt run --full-refresh` of the incremental models on the same
data (timed) and EXCEPT ALL both ways between the incremental tables and the rebuilt ones.
Prints per-model seconds and the dbt subprocess peak RSS. The helpers live in
assets/dbt/incremental_check.py (shared with tests/integration/test_dbt_incremental.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from assets.dbt.incremental_check import (
    INCREMENTAL_MODELS,
    add_touchpoints,
    changed_opportunities,
    differences,
    load_warehouse,
    merge_like_dlt,
    run_dbt,
    snapshot_tables,
)
from sandbox.org import advance, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--baseline-project",
        type=Path,
        default=None,
        help="another copy of dbt_project (e.g. `git archive HEAD dbt_project`): its `dbt build` "
        "is timed on the same data before ours (full) and after the changes (its rebuild)",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix=f"dbt-bench-{args.scale}-"))
    home.mkdir(parents=True, exist_ok=True)
    warehouse, target = home / "warehouse.duckdb", home / "target"
    try:
        started = time.monotonic()
        org = generate(args.scale, seed=args.seed)
        load_warehouse(org, warehouse)
        print(f"org {args.scale} loaded in {time.monotonic() - started:.1f} s", flush=True)
        run_dbt(["parse"], home, target)
        base, base_target = args.baseline_project, home / "baseline_target"
        if base:
            run_dbt(["parse"], home, base_target, base)
            base_full = run_dbt(["build"], home, base_target, base)
            print(f"baseline full build {base_full['seconds']:.1f} s", flush=True)
        build = ["build", "--exclude-resource-type", "unit_test"]
        full = run_dbt([*build, "--full-refresh"], home, target)
        print(f"full build {full['seconds']:.1f} s, peak {full['peak_mb']:.0f} MB", flush=True)
        nothing = run_dbt(build, home, target)
        print(f"no-change build {nothing['seconds']:.1f} s", changed_opportunities(warehouse))
        new = advance(org, 7)
        merged = merge_like_dlt(org, new, warehouse, load_id=f"{time.time():.6f}")
        added = add_touchpoints(warehouse, 200, datetime(2026, 2, 1))
        print(f"merged {merged}, {added} new touchpoints", flush=True)
        incr = run_dbt(build, home, target)
        print(f"incremental build {incr['seconds']:.1f} s, peak {incr['peak_mb']:.0f} MB")
        changed = changed_opportunities(warehouse)
        print(f"opportunities recomputed by the incremental build: {changed}")
        snapshot_tables(warehouse, INCREMENTAL_MODELS, "incremental_copy")
        if base:
            base_incr = run_dbt(["build"], home, base_target, base)
            print(f"baseline rebuild after the changes {base_incr['seconds']:.1f} s", flush=True)
        select = ["--select", *INCREMENTAL_MODELS]
        refresh = run_dbt(["run", "--full-refresh", *select], home, target)
        print(f"full-refresh of the incremental models {refresh['seconds']:.1f} s")
        diffs = differences(warehouse, INCREMENTAL_MODELS, "incremental_copy")
        runs = {"full": full, "no-change": nothing, "incremental": incr}
        if base:
            runs = {"base full": base_full, "base rebuild": base_incr, **runs}
        header = "".join(f"{label:>14}" for label in runs)
        print(f"\n{'model (s)':<36}{header}{'rows':>11}{'diff':>6}")
        for name in INCREMENTAL_MODELS:
            uid = f"model.salesops.{name}"
            rows, a, b = diffs[name]
            cells = "".join(f"{res['nodes'].get(uid, 0):>14.2f}" for res in runs.values())
            print(f"{name:<36}{cells}{rows:>11,}{a + b:>6}")
        print(f"{'dbt wall s':<36}" + "".join(f"{r['seconds']:>14.1f}" for r in runs.values()))
        print(f"{'peak RSS MB':<36}" + "".join(f"{r['peak_mb']:>14.0f}" for r in runs.values()))
        for kind in ("model", "test", "unit_test"):
            prefix = kind + "."
            sums = [
                sum(s for u, s in r["nodes"].items() if u.startswith(prefix)) for r in runs.values()
            ]
            print(f"{kind + ' s (sum of nodes)':<36}" + "".join(f"{v:>14.1f}" for v in sums))
        top = sorted(incr["nodes"], key=lambda uid: -incr["nodes"][uid])[:20]
        print(f"\n{'slowest nodes of the incremental build (s)':<60}{header}")
        for uid in top:
            cells = "".join(f"{res['nodes'].get(uid, 0):>14.2f}" for res in runs.values())
            print(f"{uid.split('.', 2)[0][:5] + ' ' + uid.split('.')[2][:53]:<60}{cells}")
        print(f"load average {os.getloadavg()}")
        if any(a or b for _, a, b in diffs.values()):
            raise SystemExit("incremental tables differ from the full refresh")
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
