"""The Dagster instance salesops runs on: DAGSTER_HOME with the project's dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestration.settings import PROJECT_ROOT, salesops_home


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", salesops_home() / "dagster_home")).resolve()


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml (kept in sync on every start)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    src = PROJECT_ROOT / "dagster.yaml"
    dst = home / "dagster.yaml"
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
