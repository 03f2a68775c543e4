"""`make demo`: run the whole pipeline on the embedded demo org and print what it produced.

Steps: generate the demo org and marketing landing files (once, under $SALESOPS_HOME), start the
HTTPS Salesforce emulator on loopback, point the Salesforce resource at it through the same
environment variables a live org uses, run the full pipeline job on the persistent Dagster instance
(so `make ui` shows the run afterwards), then summarise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from orchestration.settings import configure_cli_logging, paths

log = logging.getLogger("salesops.demo")

DEMO_SEED = 42


def prepare_demo_org(scale: str = "small", seed: int = DEMO_SEED, end: date | None = None) -> Path:
    """Generate the demo org + marketing landing files once; reuse them on later runs."""
    from sandbox.marketing import generate_marketing, write_landing
    from sandbox.org import generate, write_org

    p = paths()
    marker = p.demo_org / "truth.json"
    if marker.exists():
        _catch_up(p.demo_org, end or datetime.now(UTC).date())
        return p.demo_org
    t0 = time.perf_counter()
    log.info("generating the %s demo org (seed %s) ...", scale, seed)
    org = generate(scale, seed=seed, end=end)
    write_org(org, p.demo_org)
    write_landing(generate_marketing(org, seed=seed), p.landing_marketing)
    log.info("demo org written to %s in %.1fs", p.demo_org, time.perf_counter() - t0)
    return p.demo_org


def _catch_up(org_dir: Path, today: date) -> None:
    """Advance an existing demo org to `today`, as a real org moves on between weekly runs.

    New and changed records get SystemModstamps after the last run, so the next extraction is
    incremental and the freshness checks see current data.
    """
    from sandbox.org import advance, read_org, write_org

    org = read_org(org_dir)
    days = (today - org.as_of.date()).days
    if days <= 0:
        log.info("demo org at %s is current (as of %s)", org_dir, org.as_of.date())
        return
    t0 = time.perf_counter()
    org = advance(org, days)
    write_org(org, org_dir)
    log.info(
        "demo org advanced by %d day(s) to %s in %.1fs",
        days,
        org.as_of.date(),
        time.perf_counter() - t0,
    )


@contextmanager
def sandbox_salesforce(org_dir: Path):
    """Serve `org_dir` over HTTPS on loopback and export the SALESFORCE_* variables for it."""
    from sandbox.api import SandboxServer

    server = SandboxServer.from_dir(org_dir, state_dir=paths().sandbox_dir)
    server.start()
    saved = {k: os.environ.get(k) for k in server.credentials}
    os.environ.update(server.credentials)
    log.info("Salesforce emulator serving %s at %s", org_dir, server.url)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def run_pipeline(job_name: str = "weekly_pipeline", partition_key: str | None = None):
    """Execute a job of the project's Definitions on the persistent Dagster instance."""
    from dagster import DagsterInstance

    from orchestration.definitions import defs
    from orchestration.instance import ensure_dagster_home
    from orchestration.jobs import default_partition_key

    ensure_dagster_home()
    job = defs.resolve_job_def(job_name)
    key = partition_key or default_partition_key(job_name, datetime.now(UTC))
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            # progress and warnings on the console; every event stays in the run log (make ui)
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=os.environ.get("SALESOPS_DEMO_SCALE", "small"))
    parser.add_argument("--job", default="weekly_pipeline")
    parser.add_argument("--partition", default=None, help="as-of partition key (default: latest)")
    args = parser.parse_args(argv)
    configure_cli_logging()

    from orchestration.summary import print_summary

    t0 = time.perf_counter()
    org_dir = prepare_demo_org(args.scale)
    with sandbox_salesforce(org_dir):
        result = run_pipeline(args.job, args.partition)
    elapsed = time.perf_counter() - t0
    print_summary(result, elapsed)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
