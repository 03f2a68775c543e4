"""Asset keys, groups and checks the dbt project gives Dagster (pure translator + manifest)."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from assets.dbt.translator import SalesopsDbtTranslator, layer_of
from sandbox.schema import OBJECTS, snake


def test_source_keys_are_the_extraction_keys():
    t = SalesopsDbtTranslator()
    props = {
        "resource_type": "source",
        "source_name": "salesforce",
        "name": "opportunity",
        "fqn": ["salesops", "staging", "salesforce", "opportunity"],
    }
    assert t.get_asset_key(props) == AssetKey(["salesforce", "opportunity"])
    assert t.get_group_name(props) == "salesforce"


@pytest.mark.parametrize(
    ("props", "key", "group"),
    [
        (
            {
                "resource_type": "model",
                "name": "opportunities",
                "config": {"schema": "marts"},
                "fqn": ["salesops", "marts", "sales", "opportunities"],
            },
            ["marts", "opportunities"],
            "marts",
        ),
        (
            {
                "resource_type": "model",
                "name": "stg_salesforce__users",
                "config": {"schema": "staging"},
                "fqn": ["salesops", "staging", "x"],
            },
            ["staging", "stg_salesforce__users"],
            "staging",
        ),
        (
            {
                "resource_type": "seed",
                "name": "opportunity_stages",
                "config": {"schema": "staging"},
                "fqn": ["salesops", "opportunity_stages"],
            },
            ["staging", "opportunity_stages"],
            "staging",
        ),
        # no configured schema: the layer folder in the fqn decides
        (
            {
                "resource_type": "model",
                "name": "int_x",
                "config": {},
                "fqn": ["salesops", "intermediate", "int_x"],
            },
            ["intermediate", "int_x"],
            "intermediate",
        ),
    ],
)
def test_model_keys_are_schema_and_name(props, key, group):
    t = SalesopsDbtTranslator()
    assert t.get_asset_key(props) == AssetKey(key)
    assert t.get_group_name(props) == group
    assert layer_of(props) == group


@pytest.fixture(scope="module")
def dbt_defs():
    from assets.dbt import get_dbt_assets, prepare_manifest

    prepare_manifest()
    return get_dbt_assets()


def test_manifest_assets_use_contract_keys(dbt_defs):
    keys = {k.to_user_string() for k in dbt_defs.keys}
    for name in (
        "opportunities",
        "opportunity_history",
        "bookings_daily",
        "stage_conversion",
        "pipeline_waterfall",
        "sales_velocity",
        "rep_ramp",
        "process_compliance",
    ):
        assert f"marts/{name}" in keys
    assert "staging/stg_salesforce__opportunities" in keys
    assert "staging/stg_marketing__touchpoints" in keys
    groups = set(dbt_defs.group_names_by_key.values())
    assert groups <= {"staging", "intermediate", "marts"}
    deps = {d.asset_key for spec in dbt_defs.specs for d in spec.deps}
    # every extracted Salesforce object is a dbt source under the extraction asset key
    for obj in OBJECTS:
        assert AssetKey(["salesforce", snake(obj)]) in deps, obj
    assert AssetKey(["marketing", "ad_spend"]) in deps
    assert AssetKey(["marketing", "touchpoints"]) in deps
    for spec in dbt_defs.specs:
        assert set(spec.kinds) == {"dbt", "duckdb"}


def test_dbt_tests_become_asset_checks(dbt_defs):
    checks = {(c.asset_key.to_user_string(), c.name) for c in dbt_defs.check_specs}
    assert ("marts/opportunities", "unique_opportunities_opportunity_id") in checks
    assert ("marts/pipeline_waterfall", "assert_pipeline_waterfall_balances") in checks
    assert ("marts/pipeline_waterfall", "assert_pipeline_waterfall_chains") in checks
    assert any(name.startswith("probability_fraction_opportunities") for _, name in checks)
