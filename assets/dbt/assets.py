"""The dbt project as Dagster assets (built on first use: loading the manifest is not free).

No `from __future__ import annotations` here: Dagster inspects the context type hint.
"""

import functools
import os

from dagster import AssetExecutionContext, AssetsDefinition
from dagster_dbt import DbtCliResource, dbt_assets

from assets.dbt.project import (
    MANIFEST_PATH,
    PROFILES_DIR,
    PROJECT_DIR,
    dbt_env,
    dbt_executable,
)
from assets.dbt.translator import SalesopsDbtTranslator

DBT_RESOURCE_KEY = "dbt"
DBT_ASSETS_NAME = "salesops_dbt_assets"


def dbt_resource() -> DbtCliResource:
    """The dbt CLI resource pointing at dbt_project/ with the venv's dbt executable."""
    return DbtCliResource(
        project_dir=str(PROJECT_DIR),
        profiles_dir=str(PROFILES_DIR),
        dbt_executable=dbt_executable(),
    )


def build_args(context: AssetExecutionContext) -> list[str]:
    """dbt CLI arguments for a run (the selection comes from the Dagster context)."""
    return ["build"]


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
    def salesops_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
        # dbt reads the warehouse path from SALESOPS_HOME: make it absolute for the subprocess.
        os.environ.update(dbt_env())
        yield from dbt.cli(build_args(context), context=context).stream()

    return salesops_dbt_assets
