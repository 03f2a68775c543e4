"""dbt in Dagster: `dbt_assets_def` (lazy), `dbt_resource()`, `prepare_manifest()`.

Importing this package is cheap: the manifest is read only when `dbt_assets_def` or
`get_dbt_assets()` is first used.
"""

from __future__ import annotations

from typing import Any

from assets.dbt.assets import DBT_RESOURCE_KEY, dbt_resource, get_dbt_assets
from assets.dbt.project import MANIFEST_PATH, prepare_manifest
from assets.dbt.translator import SalesopsDbtTranslator

__all__ = [
    "DBT_RESOURCE_KEY",
    "MANIFEST_PATH",
    "SalesopsDbtTranslator",
    "dbt_assets_def",
    "dbt_resource",
    "get_dbt_assets",
    "prepare_manifest",
]


def __getattr__(name: str) -> Any:
    if name == "dbt_assets_def":
        return get_dbt_assets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
