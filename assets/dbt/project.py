"""Where the dbt project lives and how its manifest is prepared (pure Python, no Dagster).

`prepare_manifest()` runs `dbt parse` only when `dbt_project/target/manifest.json` is missing or
older than any project file, so `make` and test sessions parse once and every Dagster step reuses
the same manifest.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from orchestration.settings import DBT_PROJECT_DIR, OFFLINE_ENV, salesops_home

logger = logging.getLogger(__name__)

PROJECT_DIR: Path = DBT_PROJECT_DIR
PROFILES_DIR: Path = DBT_PROJECT_DIR
TARGET_DIR: Path = DBT_PROJECT_DIR / "target"
MANIFEST_PATH: Path = TARGET_DIR / "manifest.json"
# Level of dbt's log file (dbt.log in the target path) unless DBT_LOG_LEVEL_FILE is set.
DBT_LOG_LEVEL_FILE = "info"

# Files whose change makes the manifest stale.
_SOURCE_DIRS = ("models", "macros", "seeds", "tests", "analyses", "snapshots")
_SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")
_SOURCE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".md", ".py"}


def dbt_executable() -> str:
    """The `dbt` next to the running interpreter (works without an activated venv)."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError(
            "dbt executable not found next to the Python interpreter or on PATH; "
            "install the project with `make setup`."
        )
    return found


def dbt_env() -> dict[str, str]:
    """Environment for a dbt subprocess: offline flags and an absolute SALESOPS_HOME.

    profiles.yml resolves SALESOPS_HOME against dbt's working directory (dbt_project/), so a
    relative value would point at the wrong warehouse; always pass the resolved path.
    """
    env = {**os.environ, **OFFLINE_ENV}
    env["SALESOPS_HOME"] = str(salesops_home())
    env["DBT_PROFILES_DIR"] = str(PROFILES_DIR)
    # dbt.log at info level (errors, warnings, node results; Dagster keeps the same lines from
    # stdout): at dbt's default, debug, it writes ~4,900 JSON lines a run, one per SQL statement,
    # connection and cache event, ~0.5 s of dbt's CPU. DBT_LOG_LEVEL_FILE=debug brings them back.
    env.setdefault("DBT_LOG_LEVEL_FILE", DBT_LOG_LEVEL_FILE)
    return env


def project_files(project_dir: Path = PROJECT_DIR) -> list[Path]:
    """Every file the manifest depends on."""
    files = [project_dir / name for name in _SOURCE_FILES if (project_dir / name).exists()]
    for folder in _SOURCE_DIRS:
        root = project_dir / folder
        if root.is_dir():
            files.extend(p for p in root.rglob("*") if p.is_file() and p.suffix in _SOURCE_SUFFIXES)
    return files


def manifest_is_stale(manifest_path: Path = MANIFEST_PATH, project_dir: Path = PROJECT_DIR) -> bool:
    """True when the manifest is missing or older than any project file."""
    if not manifest_path.exists():
        return True
    built = manifest_path.stat().st_mtime
    return any(p.stat().st_mtime > built for p in project_files(project_dir))


def run_dbt_parse(target_dir: Path) -> subprocess.CompletedProcess:
    """`dbt parse` of the project into `target_dir` (offline env, output captured)."""
    return subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROFILES_DIR),
            "--target-path",
            str(target_dir),
        ],
        cwd=PROJECT_DIR,
        env=dbt_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or stale; return the manifest path."""
    if not force and not manifest_is_stale():
        logger.info("dbt manifest is up to date: %s", MANIFEST_PATH)
        return MANIFEST_PATH
    started = time.monotonic()
    logger.info("dbt parse: preparing %s", MANIFEST_PATH)
    # dbt parse opens no database connection, but the profile still needs a valid path.
    salesops_home().mkdir(parents=True, exist_ok=True)
    result = run_dbt_parse(TARGET_DIR)
    if result.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(
            "dbt parse failed; fix the dbt project and rerun `make manifest`.\n"
            + (result.stdout[-4000:] or "")
            + (result.stderr[-2000:] or "")
        )
    # parse does not rewrite an unchanged manifest on partial parse: mark it fresh.
    MANIFEST_PATH.touch()
    logger.info("dbt parse done in %.1f s", time.monotonic() - started)
    return MANIFEST_PATH
