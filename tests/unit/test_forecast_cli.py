"""`python -m forecasts backtest`: output, JSON, and clear errors for bad files."""

import json

import numpy as np
import pandas as pd
import pytest

from forecasts.cli import InputError, main, read_series


def _write(path, dates, values):
    pd.DataFrame({"date": dates, "value": values}).to_csv(path, index=False)
    return path


@pytest.fixture
def weekly_csv(tmp_path):
    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", periods=40 * 7, freq="D")
    vals = 10 + rng.poisson(5, len(days))  # daily values, summed into weeks
    return _write(tmp_path / "w.csv", days.strftime("%Y-%m-%d"), vals), days, vals


def test_daily_rows_are_summed_into_monday_weeks(weekly_csv):
    path, days, vals = weekly_csv
    y = read_series(path, "W")
    assert len(y) == 40
    assert y.index[0] == pd.Timestamp("2024-01-01")  # a Monday
    assert y.iloc[0] == pytest.approx(vals[:7].sum())


def test_cli_json_has_every_origin_and_model(weekly_csv, capsys):
    path, _, _ = weekly_csv
    rc = main(
        [
            "backtest",
            "--csv",
            str(path),
            "--freq",
            "W",
            "--horizon",
            "2",
            "--origins",
            "3",
            "--json",
            "--models",
            "snaive,ets",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chosen"] in ("snaive", "ets")
    assert len(out["origins"]) == 3
    first = out["origins"][0]["models"]["ets"]
    assert len(first["point"]) == 2 and len(first["lo95"]) == 2
    # last origin's targets are the final 2 weeks (week 39 starts 2024-09-30)
    assert out["origins"][-1]["models"]["snaive"]["period_start"] == ["2024-09-23", "2024-09-30"]
    wape = {s["model"]: s["wape"] for s in out["summary"]}
    recs = [
        (a, p)
        for o in out["origins"]
        for a, p in zip(o["models"]["ets"]["actual"], o["models"]["ets"]["point"], strict=True)
    ]
    by_hand = sum(abs(a - p) for a, p in recs) / sum(abs(a) for a, _ in recs)
    assert wape["ets"] == pytest.approx(by_hand)


def test_cli_table_output(weekly_csv, capsys):
    path, _, _ = weekly_csv
    assert (
        main(
            [
                "backtest",
                "--csv",
                str(path),
                "--freq",
                "W",
                "--horizon",
                "1",
                "--origins",
                "2",
                "--models",
                "snaive",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "MASE" in out and "chosen: snaive" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("day,value\n2024-01-01,1\n", "missing column(s) date"),
        ("date,value\n2024-01-01,1\nnot-a-date,2\n", "line 3, column 'date'"),
        ("date,value\n2024-01-01,1\n2024-02-01,abc\n", "line 3, column 'value'"),
        ("date,value\n2024-01-01,1\n2024-03-01,2\n", "no rows for 1 period"),
        ("", "empty"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_series(p, "M")


def test_too_short_series_is_a_clear_cli_error(tmp_path, capsys):
    p = _write(tmp_path / "s.csv", ["2024-01-01", "2024-02-01", "2024-03-01"], [1, 2, 3])
    rc = main(["backtest", "--csv", str(p), "--freq", "M", "--horizon", "2", "--origins", "2"])
    assert rc == 2
    assert "series too short: 3 M periods" in capsys.readouterr().err
