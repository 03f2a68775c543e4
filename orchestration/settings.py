"""Where salesops keeps its runtime files, and the names shared across layers.

Pure Python (no Dagster import): every layer may use it. All paths derive from `SALESOPS_HOME`
(default `./data`), so tests and benchmarks point a whole run elsewhere with one variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Offline by default: nothing in a run may phone home.
OFFLINE_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",  # `dbt --version` otherwise asks PyPI for the latest release
    "DO_NOT_TRACK": "1",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DAGSTER_DISABLE_TELEMETRY": "1",
}
for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# DuckDB schemas
RAW_SALESFORCE_SCHEMA = "salesforce"
RAW_MARKETING_SCHEMA = "marketing"
QUALITY_SCHEMA = "quality"
FORECASTS_SCHEMA = "forecasts"


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def marts(self) -> Path:
        return self.home / "marts.duckdb"

    @property
    def landing_marketing(self) -> Path:
        return self.home / "landing" / "marketing"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dlt_pipelines(self) -> Path:
        return self.home / "dlt"

    @property
    def demo_org(self) -> Path:
        return self.home / "demo_org"

    @property
    def sandbox_dir(self) -> Path:
        return self.home / "sandbox"


def salesops_home() -> Path:
    return Path(os.environ.get("SALESOPS_HOME", PROJECT_ROOT / "data")).resolve()


def paths() -> Paths:
    """Paths under the current SALESOPS_HOME (read at call time, never cached)."""
    return Paths(salesops_home())


# DuckDB sizes its buffer pool at 80 % of RAM by default and keeps what it took: on a shared
# machine the pipeline's connections are capped instead (spilling to `<db>.tmp` beyond it), so the
# run's peak memory stays bounded as the org grows. dbt's own connection has its own limit
# (SALESOPS_DBT_MEMORY_LIMIT in dbt_project/profiles.yml).
DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"


def duckdb_config() -> dict[str, str]:
    """`config=` for every `duckdb.connect` of the pipeline (SALESOPS_DUCKDB_MEMORY_LIMIT)."""
    return {
        "memory_limit": os.environ.get("SALESOPS_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)
    }


# Our packages log progress at INFO; third-party libraries only say warnings and errors.
PROJECT_LOGGERS = (
    "salesops",
    "orchestration",
    "sandbox",
    "assets",
    "quality_checks",
    "forecasts",
    "reports",
)


def configure_cli_logging(fmt: str = "%(asctime)s [%(name)s] %(message)s") -> None:
    """Logging for the project's command-line entry points (demo, ui, manifest, docs)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format=fmt)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    # Great Expectations sets its own INFO level on import; keep its chatter out.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
