"""statsmodels' import, started in a background thread before the forecast's inputs query."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_preload_imports_the_fit_modules_once_in_a_background_thread():
    code = textwrap.dedent(
        """
        import json, sys
        from forecasts import models
        before = [m for m in models.FIT_MODULES if m in sys.modules]
        models.preload()
        models.preload()  # idempotent: one thread
        threads = [t.name for t in models._preload_thread]
        models.wait_preload()
        alive = any(t.is_alive() for t in models._preload_thread)
        after = [m for m in models.FIT_MODULES if m in sys.modules]
        models.preload()  # already imported: no new thread
        again = len(models._preload_thread)
        print(json.dumps({"before": before, "threads": threads, "alive": alive,
                          "after": after, "again": again}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] == []  # importing forecasts.models does not import statsmodels
    assert got["threads"] == ["salesops-statsmodels-import"]
    assert got["alive"] is False  # wait_preload returned after the import
    assert got["after"] == [
        "statsmodels.tsa.exponential_smoothing.ets",
        "statsmodels.tsa.statespace.sarimax",
    ]
    assert got["again"] == 1
