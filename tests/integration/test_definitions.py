"""The assembled Definitions load, pass `dagster definitions validate`, match the README graph."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.schema import OBJECT_NAMES, snake

ROOT = Path(__file__).resolve().parents[2]


def _readme_groups() -> dict[str, dict[str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Asset groups") :]
    section = section[: section.index("\n## ")]
    groups: dict[str, dict[str, list[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        group = cells[0].strip("`")
        groups[group] = {
            "assets": re.findall(r"`([a-z0-9_/*]+)`", cells[1]),
            "upstream": re.findall(r"`([a-z0-9_]+)`", cells[2]),
        }
    return groups


@pytest.fixture(scope="module")
def graph():
    from orchestration.definitions import defs

    return defs, defs.resolve_asset_graph()


def test_readme_lists_every_group(graph):
    _, rg = graph
    groups = _readme_groups()
    assert groups, "README has no asset-group table"
    actual = {rg.get(k).group_name for k in rg.get_all_asset_keys()}
    assert actual == set(groups), f"groups in code {sorted(actual)} vs README {sorted(groups)}"


def test_readme_assets_exist_in_their_group(graph):
    _, rg = graph
    by_group: dict[str, list[str]] = {}
    for k in rg.get_all_asset_keys():
        by_group.setdefault(rg.get(k).group_name, []).append(k.to_user_string())
    for group, spec in _readme_groups().items():
        for pattern in spec["assets"]:
            assert fnmatch.filter(by_group.get(group, []), pattern), (
                f"README says group {group} has {pattern}; it has {sorted(by_group.get(group, []))}"
            )


def test_dependencies_follow_the_readme_layers(graph):
    _, rg = graph
    groups = _readme_groups()
    for k in rg.get_all_asset_keys():
        node = rg.get(k)
        allowed = set(groups[node.group_name]["upstream"]) | {node.group_name}
        for parent in node.parent_keys:
            pg = rg.get(parent).group_name
            assert pg in allowed, (
                f"{k.to_user_string()} ({node.group_name}) depends on "
                f"{parent.to_user_string()} ({pg}); README allows {sorted(allowed)}"
            )


def test_every_salesforce_object_is_extracted_and_staged(graph):
    from dagster import AssetKey

    _, rg = graph
    keys = rg.get_all_asset_keys()
    staged_from = {
        p
        for k in keys
        if k.path[0] == "staging" and k.path[-1].startswith("stg_salesforce__")
        for p in rg.get(k).parent_keys
    }
    for obj in OBJECT_NAMES:
        raw = AssetKey(["salesforce", snake(obj)])
        assert raw in keys, f"no extraction asset for {obj}"
        assert raw in staged_from, f"no staging model reads {raw.to_user_string()}"


def test_every_raw_table_has_a_blocking_quality_check(graph):
    defs, rg = graph
    checks = {}
    for ck in rg.asset_check_keys:
        checks.setdefault(ck.asset_key, []).append(ck)
    raw = [
        k for k in rg.get_all_asset_keys() if rg.get(k).group_name in ("salesforce", "marketing")
    ]
    assert raw
    for k in raw:
        assert k in checks, f"{k.to_user_string()} has no data-quality check"
        assert any(rg.get_check_spec(ck).blocking for ck in checks[k]), (
            f"{k.to_user_string()}'s checks are not blocking"
        )


def test_forecasts_feed_exports_and_reports(graph):
    from dagster import AssetKey

    _, rg = graph
    for cadence in ("weekly", "monthly"):
        fc = AssetKey(["forecasts", f"{cadence}_bookings_forecast"])
        children = {c.to_user_string() for c in rg.get(fc).child_keys}
        assert f"reports/finance_forecast_export_{cadence}" in children
        assert f"reports/executive_report_{cadence}" in children
        assert {p.to_user_string() for p in rg.get(fc).parent_keys} >= {
            "marts/opportunities",
            "marts/opportunity_history",
            "marts/bookings_daily",
        }


def test_jobs_and_schedules(graph):
    defs, _ = graph
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"weekly_pipeline", "monthly_forecast"} <= jobs
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["weekly_pipeline_schedule"].cron_schedule == "0 6 * * 1"
    assert schedules["monthly_forecast_schedule"].cron_schedule == "0 6 1 * *"


def test_dagster_definitions_validate_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SALESOPS_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "orchestration.definitions",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Validation successful" in proc.stdout + proc.stderr
