"""`make ui`: the Dagster UI on http://127.0.0.1:3000 with the demo Salesforce emulator behind it.

Runs launched from the UI (and the schedules, which are on by default here) extract from the
emulator through the same SALESFORCE_* variables a live org uses. If those variables are already
set in the environment (a real org), no emulator is started.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from orchestration.demo import prepare_demo_org, sandbox_salesforce
from orchestration.instance import ensure_dagster_home
from orchestration.settings import PROJECT_ROOT, configure_cli_logging

log = logging.getLogger("salesops.ui")


def dagster_dev_command(host: str, port: int) -> list[str]:
    # No -m: `dagster dev` reads [tool.dagster] in pyproject.toml (module and location name).
    return [sys.executable, "-m", "dagster", "dev", "-h", host, "-p", str(port)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dagster UI for salesops")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SALESOPS_UI_PORT", 3000)))
    args = parser.parse_args(argv)
    configure_cli_logging()
    ensure_dagster_home()
    cmd = dagster_dev_command(args.host, args.port)
    log.info("Dagster UI: http://%s:%s  (Ctrl-C to stop)", args.host, args.port)
    if os.environ.get("SALESFORCE_USERNAME") or os.environ.get("SALESFORCE_CLIENT_ID"):
        log.info("SALESFORCE_* set: using that org, no emulator")
        return subprocess.call(cmd, cwd=PROJECT_ROOT)
    with sandbox_salesforce(prepare_demo_org()):
        try:
            return subprocess.call(cmd, cwd=PROJECT_ROOT)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
