"""How dbt resources become Dagster assets: keys, groups and kinds shared across the project.

- sources: `AssetKey([source_name, table])`, the same keys the extraction assets use
  (`["salesforce", "opportunity"]`, `["marketing", "touchpoints"]`, `["quality", ...]`);
- models and seeds: `AssetKey([schema, name])`, schema being staging / intermediate / marts;
- group = layer (the schema); kinds {"dbt", "duckdb"}; dbt tests become asset checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

LAYERS = ("staging", "intermediate", "marts")


def layer_of(props: Mapping[str, Any]) -> str:
    """The schema a model or seed is built in (the layer)."""
    schema = props.get("config", {}).get("schema") or props.get("schema")
    if schema:
        return str(schema)
    fqn = props.get("fqn") or []
    for part in fqn:
        if part in LAYERS:
            return part
    return "dbt"


class SalesopsDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([layer_of(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return dbt_resource_props["source_name"]
        return layer_of(dbt_resource_props)
