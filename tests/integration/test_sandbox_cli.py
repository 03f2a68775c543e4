"""`python -m sandbox`: generate an org to files, then serve it standalone and query it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from sandbox.__main__ import main
from sandbox.api import client


def test_generate_then_serve(tmp_path: Path) -> None:
    out = tmp_path / "org"
    assert main(["generate", "--scale", "small", "--out", str(out), "--seed", "3"]) == 0
    opp = pq.read_table(out / "Opportunity.parquet")
    assert opp.num_rows > 0 and (out / "truth.json").exists()
    assert any((out / "landing" / "marketing" / "touchpoints").iterdir())

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--org-dir",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        env: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, proc.stderr.read()  # type: ignore[union-attr]
            if line.startswith("export "):
                key, _, value = line[len("export ") :].strip().partition("=")
                env[key] = shlex.split(value)[0]
            if "Ctrl-C" in line:
                break
        assert env["SALESFORCE_CA_FILE"] == str(tmp_path / "state" / "sandbox-ca.pem")
        sf = client(env)
        total = sf.query("SELECT COUNT() FROM Opportunity")["totalSize"]
        assert total == (~opp["IsDeleted"].to_numpy(zero_copy_only=False)).sum()
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped after" in stdout
