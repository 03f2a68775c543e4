"""Data-quality gate: GX suites built in code, the row-weighted score, blocking Dagster checks.

Pure modules (importable without Dagster or GX): `rules` (suites), `score` (math), `sql_engine`,
`store` (quality schema), `validate` (entry point), `marts` (data-driven mart invariants),
`gx_engine` (Great Expectations, imported lazily). Dagster layer: `checks`.

Exports for orchestration/definitions.py (resolved lazily so `import quality_checks.rules` does
not import Dagster):

* `quality_checks` - one blocking asset check per raw table (Salesforce + marketing), all run by
  one step: a list holding one `multi_asset_check`
* `salesforce_quality_checks`, `marketing_quality_checks` - the same, split by source (one step
  each; use either these two or `quality_checks`)
* `quality_assets` - [the `reports/data_quality_report` asset]
* `build_mart_check(asset_key, schema, table)` - blocking check for a mart table
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "build_mart_check",
    "marketing_quality_checks",
    "quality_assets",
    "quality_checks",
    "salesforce_quality_checks",
]


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'quality_checks' has no attribute {name!r}")
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


def _build(name: str) -> Any:
    from quality_checks import checks

    if name == "build_mart_check":
        return checks.build_mart_check
    if name == "quality_assets":
        return [checks.quality_report]
    from quality_checks.rules import marketing_specs, salesforce_specs

    config = checks.config_for_run()
    if name == "salesforce_quality_checks":
        return checks.build_quality_checks(
            salesforce_specs(config), name="salesforce_data_quality_gate"
        )
    if name == "marketing_quality_checks":
        return checks.build_quality_checks(
            marketing_specs(config), name="marketing_data_quality_gate"
        )
    return checks.build_quality_checks(salesforce_specs(config) + marketing_specs(config))
