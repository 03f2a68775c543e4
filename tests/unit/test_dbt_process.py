"""dbt as the Dagster step runs it: `python assets/dbt/dbt_process.py` with salesops' profile.

A two-model project in a temp dir, on the real profiles.yml and a temp SALESOPS_HOME: the wrapper
gives dbt's results and exit codes, closes the warehouse cleanly (no write-ahead log left for a
file copy to miss), writes dbt.log at info level, and every model's connection has the profile's
settings (some now applied once when the database opens, not per cursor).
"""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from assets.dbt.assets import DBT_PROCESS_SCRIPT, dbt_python, dbt_resource
from assets.dbt.project import DBT_LOG_LEVEL_FILE, PROFILES_DIR, dbt_env

SETTINGS_SQL = """
select
    current_setting('memory_limit') as memory_limit,
    current_setting('preserve_insertion_order') as preserve_insertion_order,
    current_setting('TimeZone') as time_zone
"""
MEMORY_LIMIT = "1234MB"


def _project(root, broken: bool = False):
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: probe\nversion: '1.0'\nconfig-version: 2\nprofile: salesops\n"
        "models:\n  probe:\n    +materialized: table\n"
    )
    (root / "models" / "first_settings.sql").write_text(SETTINGS_SQL)
    second = "select * from {{ ref('first_settings') }}, no_such_table" if broken else SETTINGS_SQL
    (root / "models" / "second_settings.sql").write_text(second)
    return root


def _run(executable: list[str], project, home, target) -> subprocess.CompletedProcess:
    env = {
        **dbt_env(),
        "SALESOPS_HOME": str(home),
        "SALESOPS_DBT_MEMORY_LIMIT": MEMORY_LIMIT,
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
        # as dagster-dbt runs it
        "DBT_LOG_FORMAT": "json",
        "DBT_LOG_LEVEL_FILE": DBT_LOG_LEVEL_FILE,
    }
    return subprocess.run(
        [*executable, "build", "--project-dir", str(project), "--profiles-dir", str(PROFILES_DIR)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _expected_memory_limit() -> str:
    """How DuckDB itself reports MEMORY_LIMIT (independent of the profile)."""
    con = duckdb.connect()
    try:
        con.execute(f"set memory_limit = '{MEMORY_LIMIT}'")
        return con.execute("select current_setting('memory_limit')").fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt_process")
    wrapper = [dbt_python(), str(DBT_PROCESS_SCRIPT)]
    out = {}
    for name, broken in (("ok", False), ("broken", True)):
        project = _project(root / name / "project", broken)
        home = root / name / "home"
        home.mkdir()
        out[name] = _run(wrapper, project, home, root / name / "target")
        out[name + "_home"] = home
        out[name + "_target"] = root / name / "target"
    return out


def test_the_resource_runs_dbt_through_the_wrapper():
    resource = dbt_resource()
    assert resource.dbt_executable == dbt_python()
    assert resource.global_config_flags == [str(DBT_PROCESS_SCRIPT)]
    assert DBT_PROCESS_SCRIPT.exists()


def test_dbt_log_is_info_level_unless_set(monkeypatch):
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    assert dbt_env()["DBT_LOG_LEVEL_FILE"] == "info"
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    assert dbt_env()["DBT_LOG_LEVEL_FILE"] == "debug"


def test_wrapper_builds_and_every_connection_has_the_profile_settings(runs):
    ok = runs["ok"]
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    results = json.loads((runs["ok_target"] / "run_results.json").read_text())["results"]
    assert {r["status"] for r in results} == {"success"} and len(results) == 2
    warehouse = runs["ok_home"] / "warehouse.duckdb"
    # closed cleanly: checkpointed, no write-ahead log a copy of the file would miss
    assert not warehouse.with_name("warehouse.duckdb.wal").exists()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select * from main.first_settings union all select * from main.second_settings"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(_expected_memory_limit(), False, "UTC")] * 2


def test_dbt_log_has_no_debug_lines(runs):
    lines = (runs["ok_target"] / "dbt.log").read_text().splitlines()
    assert lines, "dbt.log is empty"
    levels = {json.loads(line)["info"]["level"] for line in lines if line.startswith("{")}
    assert levels and "debug" not in levels


def test_wrapper_fails_like_dbt(runs):
    broken = runs["broken"]
    assert broken.returncode == 1, broken.stdout[-3000:]
    results = json.loads((runs["broken_target"] / "run_results.json").read_text())["results"]
    status = {r["unique_id"].split(".")[-1]: r["status"] for r in results}
    assert status == {"first_settings": "success", "second_settings": "error"}
    assert "no_such_table" in broken.stdout
    assert not runs["broken_home"].joinpath("warehouse.duckdb.wal").exists()
