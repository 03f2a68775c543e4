"""Great Expectations' import: started in a background thread, done once, altair deferred.

Each test runs in a fresh interpreter (the import state of this pytest process is shared by
every other test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_preload_imports_gx_once_in_a_background_thread_and_defers_altair():
    got = _run(
        """
        import json, sys, threading
        from quality_checks import gx_engine
        before = "great_expectations" in sys.modules
        gx_engine.preload()
        gx_engine.preload()  # idempotent: one thread
        threads = [t.name for t in gx_engine._preload]
        gx = gx_engine._gx()  # waits for the thread's import, does not import again
        gx_engine.preload()  # after the import: nothing to start
        registered = gx_engine._register_duckdb_datasource.cache_info().misses
        altair_run_early = "altair.vegalite" in sys.modules
        # the one GX module that uses altair still gets the real module when it needs it
        from great_expectations.expectations.core import (
            expect_column_kl_divergence_to_be_less_than as kl,
        )
        chart = kl.alt.Chart
        import altair
        print(json.dumps({
            "before": before,
            "threads": threads,
            "same_module": gx is sys.modules["great_expectations"],
            "registered": registered,
            "altair_run_early": altair_run_early,
            "altair_real": "altair.vegalite" in sys.modules and chart is altair.Chart,
            "altair_in_modules_is_real": type(sys.modules["altair"]).__name__ == "module",
            "has_context": callable(gx.get_context),
        }))
        """
    )
    assert got["before"] is False
    assert got["threads"] == ["salesops-gx-import"]
    assert got["same_module"] and got["has_context"]
    assert got["registered"] == 1  # the DuckDB datasource type registered exactly once
    assert got["altair_run_early"] is False  # GX's import did not execute altair
    assert got["altair_real"] and got["altair_in_modules_is_real"]


def test_a_deferred_module_loads_on_first_use_and_submodules_import():
    got = _run(
        """
        import json, sys
        from quality_checks import gx_engine
        gx_engine._defer_import("altair")
        stand_in = sys.modules["altair"]
        import altair as alt  # the import statement alone does not execute it
        executed_on_import = "altair.vegalite" in sys.modules
        import importlib.util
        spec_found = importlib.util.find_spec("altair") is not None
        import altair.utils  # a submodule import loads the real package first
        real = sys.modules["altair"]
        print(json.dumps({
            "stand_in_type": type(stand_in).__name__,
            "executed_on_import": executed_on_import,
            "spec_found": spec_found,
            "replaced": real is not stand_in and type(real).__name__ == "module",
            "through_stand_in": alt.Chart is real.Chart,
            "utils": hasattr(real, "utils"),
        }))
        """
    )
    assert got["stand_in_type"] == "_DeferredModule"
    assert got["executed_on_import"] is False
    assert got["spec_found"] is True
    assert got["replaced"] and got["through_stand_in"] and got["utils"]
