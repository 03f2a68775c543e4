"""`python -m assets.attribution`: happy paths and one test per bad-input case."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from assets.attribution.__main__ import main

PATHS = (
    "path,total_conversions,total_conversion_value,total_null\n"
    "email>paid_search,1,100,0\n"
    "email,0,0,1\n"
    "email>display,1,30,0\n"
)
JOURNEYS = (
    "journey_id,occurred_at,channel,converted,value\n"
    "j1,2026-01-02T10:00:00+01:00,paid_search,1,100\n"
    "j1,2026-01-01T10:00:00Z,email,,\n"
    "j2,2026-01-01T00:00:00Z,email,0,\n"
    "j3,2026-02-01T00:00:00-05:00,email,true,30\n"
    "j3,2026-02-03T00:00:00Z,display,,30\n"
)


def write(tmp_path, text: str, name: str = "in.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_paths_happy_path_writes_csv(tmp_path, capsys):
    out = tmp_path / "out" / "credits.csv"
    assert main([write(tmp_path, PATHS), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paths format, 3 journeys" in printed
    df = pd.read_csv(out)
    assert set(df["model"]) == {
        "first_touch",
        "last_touch",
        "linear",
        "time_decay",
        "u_shaped",
        "w_shaped",
        "markov",
        "shapley",
    }
    totals = df.groupby("model")[["conversions", "value"]].sum()
    assert (totals["conversions"].round(9) == 2).all()
    assert (totals["value"].round(9) == 130).all()
    got = df.set_index(["model", "channel"])
    # hand-computed: first touch gives email both conversions; last touch splits them
    assert got.loc[("first_touch", "email"), "conversions"] == 2
    assert got.loc[("last_touch", "paid_search"), "value"] == 100
    # Markov: removal effects email 1, paid_search 1/2, display 1/2 -> 1, 0.5, 0.5
    assert got.loc[("markov", "email"), "conversions"] == pytest.approx(1.0)
    assert got.loc[("markov", "display"), "removal_effect"] == pytest.approx(0.5)


def test_journeys_happy_path_orders_by_time(tmp_path, capsys):
    out = tmp_path / "c.csv"
    rc = main([write(tmp_path, JOURNEYS), "--models", "first_touch,last_touch", "--out", str(out)])
    assert rc == 0
    assert "journeys format, 3 journeys, 5 touches" in capsys.readouterr().out
    got = pd.read_csv(out).set_index(["model", "channel"])
    # j1: email (Jan 1 10:00Z) precedes paid_search (Jan 2 09:00Z)
    assert got.loc[("first_touch", "email"), "conversions"] == 2
    assert got.loc[("last_touch", "paid_search"), "value"] == 100
    assert got.loc[("last_touch", "display"), "value"] == 30


def test_custom_path_columns_and_separator(tmp_path, capsys):
    text = "journey,conv,nulls\nA | B,3,1\nB,1,4\n"
    rc = main(
        [
            write(tmp_path, text),
            "--path-col",
            "journey",
            "--sep",
            "|",
            "--conv-col",
            "conv",
            "--null-col",
            "nulls",
            "--models",
            "linear",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 journeys" in out and "4 conversions" in out
    # linear: A gets 1.5, B gets 1.5 + 1 = 2.5
    assert "2.50" in out and "1.50" in out


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("path,total_conversions\na,1\n,2\n", [], "line 3: empty path"),
        ("path,total_conversions\na>>b,1\n", [], "line 2: empty channel name"),
        ("path,total_conversions\na,1\nb,-2\n", [], "line 3: 'total_conversions' is negative"),
        ("path,total_conversions\na,abc\n", [], "line 2: 'total_conversions' is not a number"),
        ("path,total_conversions,total_null\na,1,x\n", [], "line 2: 'total_null' is not a number"),
        ("path,total_conversions\na,\n", [], "line 2: 'total_conversions' is empty"),
        ("path,conversions\na,1\n", [], "missing column(s) ['total_conversions']"),
        ("foo,bar\n1,2\n", [], "cannot tell the input format"),
        ("path,total_conversions\n", [], "no data rows"),
        ("", [], "the file is empty"),
        ("path,total_conversions\na,1\n", ["--models", "markov,magic"], "unknown model"),
        ("path,total_conversions\na,1\n", ["--order", "0"], "--order must be >= 1"),
        ("journey_id,channel,converted\nj,a,1\n", [], "needs 'position' or 'occurred_at'"),
        ("journey_id,position,channel\nj,1,a\n", [], "missing column(s) ['converted']"),
        ("journey_id,position,channel,converted\nj,1,a,maybe\n", [], "line 2: 'converted' must"),
        ("journey_id,position,channel,converted\nj,1,a,1\nj,2,,1\n", [], "line 3: 'channel'"),
        ("journey_id,position,channel,converted\nj,x,a,1\n", [], "line 2: 'position' is not"),
        (
            "journey_id,position,channel,converted\nj,1,a,1\nk,1,a,0\nj,2,b,0\n",
            [],
            "line 4: 'converted' = 0 disagrees",
        ),
        (
            "journey_id,occurred_at,channel,converted\nj,2026-01-01,a,1\nj,yesterday,b,1\n",
            [],
            "line 3: 'occurred_at' is not an ISO 8601",
        ),
        ("journey_id,position,channel,converted\nj,1,a,\n", [], "line 2: the journey has no"),
        ("journey_id,position,channel,converted,value\nj,1,a,1,-5\n", [], "line 2: 'value' is"),
    ],
)
def test_bad_input_names_the_line_and_exits_2(tmp_path, capsys, text, args, message):
    assert main([write(tmp_path, text), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err


def test_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_process_exit_code_and_no_traceback(tmp_path):
    bad = write(tmp_path, "path,total_conversions\na,1\nb>,oops\n")
    proc = subprocess.run(
        [sys.executable, "-m", "assets.attribution", bad], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "line 3" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "assets.attribution", write(tmp_path, PATHS, "ok.csv")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "credited conversions" in ok.stdout and "TOTAL" in ok.stdout


def test_output_is_deterministic(tmp_path):
    shuffled = "\n".join([PATHS.splitlines()[0], *reversed(PATHS.splitlines()[1:])]) + "\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main([write(tmp_path, PATHS, "p1.csv"), "--out", str(a)]) == 0
    assert main([write(tmp_path, shuffled, "p2.csv"), "--out", str(b)]) == 0
    fa, fb = pd.read_csv(a), pd.read_csv(b)
    pd.testing.assert_frame_equal(fa, fb, rtol=1e-12)


def test_journey_markers_and_conversion_time(tmp_path):
    text = (
        "journey_id,position,channel,converted,value,lead_creation,opp_creation,occurred_at,"
        "converted_at\n"
        "j,1,a,1,100,0,0,2026-01-01T00:00:00Z,2026-01-22T00:00:00Z\n"
        "j,2,b,,,1,0,2026-01-08T00:00:00Z,\n"
        "j,3,c,,,0,0,2026-01-15T00:00:00Z,\n"
        "j,4,d,,,0,true,2026-01-15T00:00:00Z,\n"
        "j,5,e,,,no,,2026-01-15T00:00:00Z,\n"
    )
    out = tmp_path / "o.csv"
    args = [write(tmp_path, text), "--models", "w_shaped,time_decay", "--half-life", "7"]
    assert main([*args, "--out", str(out)]) == 0
    got = pd.read_csv(out).set_index(["model", "channel"])["value"]
    # W-shaped: first a, lead creation b, opportunity creation d -> 30 each, 10 over c and e
    want_w = {"a": 30, "b": 30, "c": 5, "d": 30, "e": 5}
    for ch, v in want_w.items():
        assert got[("w_shaped", ch)] == pytest.approx(v, abs=1e-9)
    # time decay relative to converted_at (Jan 22): ages 21, 14, 7, 7, 7 days
    raw = {"a": 1 / 8, "b": 1 / 4, "c": 1 / 2, "d": 1 / 2, "e": 1 / 2}
    total = sum(raw.values())
    for ch, w in raw.items():
        assert got[("time_decay", ch)] == pytest.approx(100 * w / total, abs=1e-9)
