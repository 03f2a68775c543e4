"""The manifest preparation and dbt environment helpers (no dbt run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from assets.dbt import project


def _touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, (mtime, mtime))


def test_manifest_stale_when_missing_or_older_than_a_project_file(tmp_path):
    manifest = tmp_path / "target" / "manifest.json"
    model = tmp_path / "models" / "a.sql"
    _touch(model, 1000.0)
    assert project.manifest_is_stale(manifest, tmp_path)  # missing
    _touch(manifest, 2000.0)
    assert not project.manifest_is_stale(manifest, tmp_path)
    _touch(model, 3000.0)  # model edited after the parse
    assert project.manifest_is_stale(manifest, tmp_path)
    _touch(manifest, 4000.0)
    _touch(tmp_path / "dbt_project.yml", 5000.0)
    assert project.manifest_is_stale(manifest, tmp_path)
    # files outside the project's source folders do not count
    _touch(manifest, 6000.0)
    _touch(tmp_path / "target" / "run_results.json", 7000.0)
    _touch(tmp_path / "logs" / "dbt.log", 7000.0)
    assert not project.manifest_is_stale(manifest, tmp_path)


def test_dbt_env_makes_salesops_home_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SALESOPS_HOME", "relative/home")
    env = project.dbt_env()
    assert Path(env["SALESOPS_HOME"]).is_absolute()
    assert env["SALESOPS_HOME"] == str((tmp_path / "relative" / "home").resolve())
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert env["DBT_PROFILES_DIR"] == str(project.PROFILES_DIR)


def test_dbt_executable_is_the_venv_one():
    exe = Path(project.dbt_executable())
    assert exe.name == "dbt"
    assert exe.exists()


def test_profile_and_project_settings():
    profiles = yaml.safe_load((project.PROFILES_DIR / "profiles.yml").read_text())
    dev = profiles["salesops"]["outputs"]["dev"]
    assert dev["type"] == "duckdb"
    # one model at a time by default: the DuckDB memory cap is shared by dbt's threads
    assert dev["threads"] == "{{ env_var('SALESOPS_DBT_THREADS', '1') | as_number }}"
    # database-wide settings once at open (config_options), not a SET per cursor (settings)
    limit = "{{ env_var('SALESOPS_DBT_MEMORY_LIMIT', '2GB') }}"
    assert dev["config_options"]["memory_limit"] == limit
    assert dev["config_options"]["preserve_insertion_order"] is False
    assert dev["settings"] == {"TimeZone": "UTC"}
    assert "env_var('SALESOPS_HOME'" in dev["path"] and dev["path"].endswith("/warehouse.duckdb")
    proj = yaml.safe_load((project.PROJECT_DIR / "dbt_project.yml").read_text())
    assert proj["profile"] == "salesops"
    assert proj["flags"]["send_anonymous_usage_stats"] is False
    assert proj["models"]["salesops"]["marts"]["+contract"]["enforced"] is True
    assert not (project.PROJECT_DIR / "packages.yml").exists()  # nothing to download


def test_importing_the_dbt_layer_does_not_load_the_manifest():
    code = (
        "import assets.dbt, reports.assets, assets.dbt.assets as a; "
        "print(a.get_dbt_assets.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # nothing was built at import: the @dbt_assets definition is made on first use only
    assert out.stdout.split()[-1] == "0"


def test_production_build_skips_dbt_unit_tests():
    from assets.dbt.assets import build_args

    args = build_args()
    assert args[0] == "build"
    # the flag and its value, adjacent: dbt reads `--exclude-resource-type unit_test`
    i = args.index("--exclude-resource-type")
    assert args[i + 1] == "unit_test"
