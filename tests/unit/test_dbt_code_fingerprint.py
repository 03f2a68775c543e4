"""Full-refresh decisions of the dbt step: the run-config flag and the code fingerprint."""

from __future__ import annotations

import copy

from assets.dbt.assets import DbtBuildConfig, build_args
from assets.dbt.code_fingerprint import (
    code_fingerprint,
    full_refresh_reason,
    record_fingerprint,
    recorded_fingerprint,
    upstream_nodes,
)


def _manifest() -> dict:
    def model(uid, parents, materialized="table", checksum="c"):
        return {
            "resource_type": "model",
            "config": {"materialized": materialized},
            "depends_on": {"nodes": parents},
            "checksum": {"name": "sha256", "checksum": checksum},
        }

    return {
        "nodes": {
            "seed.p.stages": {"resource_type": "seed", "config": {}, "checksum": {"checksum": "s"}},
            "model.p.stg": model("stg", ["seed.p.stages"]),
            "model.p.int": model("int", ["model.p.stg"]),
            "model.p.incr": model("incr", ["model.p.int"], "incremental"),
            "model.p.unrelated": model("unrelated", ["model.p.stg"]),
            "test.p.not_null": {"resource_type": "test", "depends_on": {"nodes": ["model.p.incr"]}},
        },
        "macros": {
            "macro.p.fx": {"package_name": "p", "macro_sql": "{% macro fx() %}1{% endmacro %}"},
            "macro.dbt.x": {"package_name": "dbt", "macro_sql": "{% macro x() %}{% endmacro %}"},
        },
    }


def test_build_args_carry_full_refresh_only_when_asked():
    assert "--full-refresh" not in build_args()
    assert "--full-refresh" not in build_args(None, full_refresh=False)
    args = build_args(None, full_refresh=True)
    assert args.count("--full-refresh") == 1
    assert args[:3] == ["build", "--exclude-resource-type", "unit_test"]
    assert DbtBuildConfig().full_refresh is False
    assert DbtBuildConfig(full_refresh=True).full_refresh is True


def test_upstream_nodes_are_the_models_and_seeds_above_incremental_ones():
    assert upstream_nodes(_manifest(), ["model.p.incr"]) == {
        "seed.p.stages",
        "model.p.stg",
        "model.p.int",
    }


def test_fingerprint_changes_with_macros_and_upstream_code_only():
    base = _manifest()
    fp = code_fingerprint(base, package="p")
    assert fp == code_fingerprint(copy.deepcopy(base), package="p")

    changed_macro = copy.deepcopy(base)
    changed_macro["macros"]["macro.p.fx"]["macro_sql"] = "{% macro fx() %}2{% endmacro %}"
    assert code_fingerprint(changed_macro, package="p") != fp

    for upstream in ("model.p.int", "seed.p.stages"):
        changed = copy.deepcopy(base)
        changed["nodes"][upstream]["checksum"]["checksum"] = "new"
        assert code_fingerprint(changed, package="p") != fp

    # neither a model off the incremental models' lineage nor another package's macro counts
    # (the incremental model's own file is in its own data fingerprint, see the macro)
    for uid in ("model.p.unrelated", "model.p.incr"):
        other = copy.deepcopy(base)
        other["nodes"][uid]["checksum"]["checksum"] = "new"
        assert code_fingerprint(other, package="p") == fp
    other = copy.deepcopy(base)
    other["macros"]["macro.dbt.x"]["macro_sql"] = "changed"
    assert code_fingerprint(other, package="p") == fp


def test_full_refresh_reason_from_recorded_state(tmp_path):
    manifest = _manifest()
    state = tmp_path / "dbt"
    assert recorded_fingerprint(state) is None
    assert "no code fingerprint" in full_refresh_reason(manifest, state)
    record_fingerprint(state, code_fingerprint(manifest))
    assert full_refresh_reason(manifest, state) is None
    manifest["macros"]["macro.salesops.y"] = {"package_name": "salesops", "macro_sql": "new"}
    assert "changed" in full_refresh_reason(manifest, state)
    (state / "code_fingerprint.json").write_text("{not json")
    assert recorded_fingerprint(state) is None


def test_dbt_step_takes_full_refresh_as_optional_run_config():
    from assets.dbt import get_dbt_assets, prepare_manifest

    prepare_manifest()
    fields = get_dbt_assets().op.config_schema.config_type.fields
    assert set(fields) == {"full_refresh"}
    assert fields["full_refresh"].is_required is False
    assert fields["full_refresh"].default_value is False
