"""`make docs`: build dbt's documentation site (lineage, every model and column) offline.

Writes `dbt_project/target/index.html` and a single-file `static_index.html` that opens from disk
without a server. The catalog (column types, row counts) comes from the warehouse when a run has
built it (`make demo` first); without one the site still shows every model, column description
and the lineage graph.
"""

from __future__ import annotations

import logging
import subprocess
import sys

from assets.dbt.project import PROJECT_DIR, TARGET_DIR, dbt_env, dbt_executable
from orchestration.settings import paths

log = logging.getLogger("salesops.docs")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[docs] %(message)s")
    warehouse = paths().warehouse
    if not warehouse.exists():
        log.info(
            "no warehouse at %s yet: the site will lack the catalog (run `make demo`)", warehouse
        )
        warehouse.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        dbt_executable(),
        "docs",
        "generate",
        "--static",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
    ]
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, env=dbt_env())
    if proc.returncode != 0:
        log.error("dbt docs generate failed (exit %s); see the output above", proc.returncode)
        return proc.returncode
    log.info("open %s in a browser (works offline)", TARGET_DIR / "static_index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
