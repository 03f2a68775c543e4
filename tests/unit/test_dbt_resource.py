"""The dbt CLI resource builds no in-process dbt adapter (no dbt run)."""

from __future__ import annotations

from assets.dbt.assets import dbt_resource


def test_no_dbt_adapter_is_built_in_the_dagster_process(monkeypatch, tmp_path):
    # dagster-dbt calls this before every dbt invocation; the stock version imports dbt-core and
    # dbt-duckdb and loads the project and profile (1-5 s) to return an adapter, used only for
    # metadata salesops never fetches (fetch_row_counts / fetch_column_metadata)
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    assert dbt_resource()._initialize_dbt_core_adapter(["build"]) is None
