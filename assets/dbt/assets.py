"""The dbt project as Dagster assets (built on first use: loading the manifest is not free).

No `from __future__ import annotations` here: Dagster inspects the context type hint.
"""

import functools
import json
import logging
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster import AssetExecutionContext, AssetsDefinition, Config
from dagster_dbt import DbtCliResource, dbt_assets
from packaging import version as pkg_version

from assets.dbt.code_fingerprint import code_fingerprint, full_refresh_reason, record_fingerprint
from assets.dbt.project import (
    MANIFEST_PATH,
    PROFILES_DIR,
    PROJECT_DIR,
    dbt_env,
    dbt_executable,
)
from assets.dbt.translator import SalesopsDbtTranslator
from orchestration.settings import salesops_home

logger = logging.getLogger(__name__)

DBT_RESOURCE_KEY = "dbt"
DBT_ASSETS_NAME = "salesops_dbt_assets"


class OfflineDbtCliResource(DbtCliResource):
    """DbtCliResource that learns dbt's version without running `dbt --version`.

    dagster-dbt asks the CLI for its version with `dbt --version`, and that command always asks
    PyPI for the latest release (one network call per run, even with DBT_VERSION_CHECK=false).
    salesops runs offline, so read the version of the installed dbt-core package instead.
    """

    @cached_property
    def _cli_version(self) -> pkg_version.Version:
        return pkg_version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        """No dbt adapter in this process: dagster-dbt builds one before every `dbt` invocation
        (importing dbt-core and dbt-duckdb, loading the project and profile: 1-5 s per step,
        measured) only for `fetch_row_counts()` / `fetch_column_metadata()`, which salesops
        does not call. The dbt subprocess does the work either way."""
        return None


# `python dbt_process.py <args>`: the dbt CLI without the interpreter's teardown (0.5-1 s a run).
DBT_PROCESS_SCRIPT = Path(__file__).with_name("dbt_process.py")


def dbt_python() -> str:
    """The interpreter of the environment dbt is installed in (the `python` beside `dbt`)."""
    beside = Path(dbt_executable()).parent / "python"
    return str(beside) if beside.exists() else sys.executable


def dbt_resource() -> DbtCliResource:
    """The dbt CLI resource pointing at dbt_project/: dbt runs as `python dbt_process.py ...`
    (assets/dbt/dbt_process.py) with the venv's interpreter."""
    return OfflineDbtCliResource(
        project_dir=str(PROJECT_DIR),
        profiles_dir=str(PROFILES_DIR),
        dbt_executable=dbt_python(),
        global_config_flags=[str(DBT_PROCESS_SCRIPT)],
    )


# dbt unit tests check model logic on fixtures, not the warehouse's data: they run in `make test`
# (tests/integration/test_marts_build.py), never in a production build.
BUILD_ARGS: tuple[str, ...] = ("build", "--exclude-resource-type", "unit_test")


class DbtBuildConfig(Config):
    """Run config of the dbt step (`ops: {salesops_dbt_assets: {config: {...}}}`).

    full_refresh: rebuild the incremental models from scratch (`dbt build --full-refresh`).
    A deploy that changes a macro or a model upstream of an incremental model is detected and
    refreshed automatically (assets/dbt/code_fingerprint.py); set this after anything else the
    incremental models cannot see, e.g. a column removed or retyped, or to repair a warehouse.
    """

    full_refresh: bool = False


def build_args(
    context: AssetExecutionContext | None = None, full_refresh: bool = False
) -> list[str]:
    """dbt CLI arguments for a run (the selection comes from the Dagster context)."""
    return [*BUILD_ARGS, "--full-refresh"] if full_refresh else list(BUILD_ARGS)


def fingerprint_state_dir() -> Path:
    """Where the code fingerprint of the warehouse's last whole dbt build is kept."""
    return salesops_home() / "dbt"


@functools.cache
def get_dbt_assets() -> AssetsDefinition:
    """Build the @dbt_assets definition from the prepared manifest (see prepare_manifest)."""
    if not MANIFEST_PATH.exists():
        raise FileNotFoundError(
            f"{MANIFEST_PATH} is missing: run `make manifest` "
            "(python -m orchestration.manifest) to prepare it with dbt parse."
        )

    @dbt_assets(
        manifest=MANIFEST_PATH,
        dagster_dbt_translator=SalesopsDbtTranslator(),
        name=DBT_ASSETS_NAME,
    )
    def salesops_dbt_assets(
        context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ):
        # dbt reads the warehouse path from SALESOPS_HOME: make it absolute for the subprocess.
        os.environ.update(dbt_env())
        manifest = json.loads(MANIFEST_PATH.read_text())
        state_dir = fingerprint_state_dir()
        full_refresh = config.full_refresh
        reason = "requested by run config" if full_refresh else None
        if not full_refresh:
            reason = full_refresh_reason(manifest, state_dir)
            full_refresh = reason is not None
        if full_refresh:
            context.log.info(f"dbt build --full-refresh: {reason}")
        yield from dbt.cli(build_args(context, full_refresh), context=context).stream()
        # Reached only when dbt succeeded (a failed build raises). A subset run may have left
        # some incremental models on the old code: record nothing, the next whole build decides.
        if not context.is_subset:
            record_fingerprint(state_dir, code_fingerprint(manifest))

    return salesops_dbt_assets
