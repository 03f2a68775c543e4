"""Executive forecast report: actual vs forecast with intervals, accuracy trend, pipeline
coverage, top movements. Renders a self-contained HTML page (inline SVG, inline CSS, no network)
and a markdown summary for Dagster metadata. Pure: takes DataFrames, returns strings."""

from __future__ import annotations

import datetime as dt
import html
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from forecasts.ledger import ACCURACY_TARGET
from forecasts.periods import (
    CADENCE_FREQ,
    as_of_timestamp,
    next_periods,
    period_index,
    period_start,
)
from forecasts.pipeline import open_pipeline
from forecasts.series import HISTORY_COLUMNS, TOTAL, UNKNOWN, state_as_of

W, H, PAD = 900, 320, 56


@dataclass
class ReportData:
    cadence: str
    as_of: pd.Timestamp
    actuals: pd.Series  # total bookings per period known at as_of (index = period start)
    forecast: pd.DataFrame  # published table at as_of (all series)
    ledger: pd.DataFrame  # forecasts.ledger rows of this cadence
    backtest_accuracy: pd.DataFrame  # series_key, horizon, accuracy
    open_pipeline: float
    movements: pd.DataFrame  # opportunity moves since the previous as-of


def movements_since(history: pd.DataFrame, prev, as_of, top: int = 10) -> pd.DataFrame:
    """Largest opportunity changes between two as-of times: won, lost, new, pushed."""
    a = state_as_of(history, prev).set_index("opportunity_id")
    b = state_as_of(history, as_of).set_index("opportunity_id")
    j = b.join(a, how="left", suffixes=("", "_prev"))
    known = j["stage_name_prev"].notna()
    was_won = j["is_won_prev"].fillna(False).astype(bool)
    was_closed = j["is_closed_prev"].fillna(False).astype(bool)
    move = pd.Series(pd.NA, index=j.index, dtype="object")
    impact = pd.Series(0.0, index=j.index)
    new = ~known & ~j["is_closed"]
    won = known & j["is_won"] & ~was_won
    lost = known & j["is_closed"] & ~j["is_won"] & ~was_closed
    pushed = known & ~j["is_closed"] & (j["close_date"] > j["close_date_prev"])
    for mask, name, values in (
        (pushed, "pushed", -j["amount_usd"]),
        (new, "new", j["amount_usd"]),
        (lost, "lost", -j["amount_usd_prev"]),
        (won, "won", j["amount_usd"]),
    ):
        move[mask] = name
        impact[mask] = values[mask]
    sel = j[move.notna()]
    out = pd.DataFrame(
        {
            "opportunity_id": sel.index,
            "move": move[move.notna()].to_numpy(),
            "stage": sel["stage_name"].to_numpy(),
            "impact_usd": impact[move.notna()].astype(float).to_numpy(),
            "segment": sel["segment"].to_numpy(),
            "region": sel["region"].to_numpy(),
            "close_date": pd.to_datetime(sel["close_date"]).dt.date.to_numpy(),
        }
    )
    order = out["impact_usd"].abs().sort_values(ascending=False, kind="stable").index
    return out.loc[order].head(top).reset_index(drop=True)


def build_report_data(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    ledger: pd.DataFrame,
    backtest_accuracy: pd.DataFrame,
    cadence: str,
    as_of,
    show_periods: int = 26,
) -> ReportData:
    from forecasts.series import bookings_as_of, build_series

    d = as_of_timestamp(as_of)
    freq = CADENCE_FREQ[cadence]
    series = build_series(bookings_as_of(history, d), freq, d)[TOTAL].iloc[-show_periods:]
    horizon = int(forecast["horizon"].max()) if len(forecast) else 1
    prev = d - (pd.Timedelta(weeks=1) if freq == "W" else pd.DateOffset(months=1))
    return ReportData(
        cadence,
        d,
        series,
        forecast,
        ledger,
        backtest_accuracy,
        open_pipeline(history, d, freq, horizon),
        movements_since(history, prev, d),
    )


HISTORY_TABLE = "marts.opportunity_history"
_UNIT = {"W": "week", "M": "month"}  # DuckDB date_trunc units: ISO weeks start on Monday


def _history_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return {
        r[0]: str(r[1]).upper()
        for r in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }


_STATES = "_salesops_report_states"


def _states_sql(table: str, types: dict[str, str]) -> str:
    """One scan of the history: the state intervals at `$d` and at `$prev` (naive UTC), with the
    normalisation of `forecasts.series.prepare_history`, flagged `at_d` / `at_prev`."""

    def naive(col: str) -> str:  # aware timestamps compare in UTC whatever the session zone
        return f"timezone('UTC', {col})" if "WITH TIME ZONE" in types[col] else f"{col}::timestamp"

    def valid_at(param: str) -> str:
        vf, vt = naive("valid_from"), naive("valid_to")
        return f"({vf} <= {param} and ({vt} is null or {vt} > {param}))"

    return f"""
        create or replace temp table {_STATES} as
        select
            opportunity_id,
            stage_name::varchar as stage_name,
            coalesce(amount_usd::double, 0.0) as amount_usd,
            close_date::date as close_date,
            coalesce(is_closed, false) as is_closed,
            coalesce(is_won, false) as is_won,
            coalesce(segment::varchar, '{UNKNOWN}') as segment,
            coalesce(region::varchar, '{UNKNOWN}') as region,
            {valid_at("$d")} as at_d,
            {valid_at("$prev")} as at_prev
        from {table}
        where {valid_at("$d")} or {valid_at("$prev")}
    """


def load_report_data(
    con: duckdb.DuckDBPyConnection,
    cadence: str,
    as_of,
    show_periods: int = 26,
    history_table: str = HISTORY_TABLE,
    top: int = 10,
) -> ReportData:
    """`build_report_data` computed inside DuckDB: the same `ReportData`, but only the report's
    own rows leave the warehouse (bookings per period, one pipeline sum, the top movements)
    instead of the whole opportunity history.

    Ties in the movement ranking (equal |impact|) are broken by opportunity id.
    """
    from forecasts.store import read_ledger, read_partition

    types = _history_columns(con, history_table)
    missing = [c for c in HISTORY_COLUMNS if c not in types]
    if missing:
        raise RuntimeError(
            f"{history_table} lacks column(s) {', '.join(missing)}: build the dbt marts first"
        )
    d = as_of_timestamp(as_of)
    freq = CADENCE_FREQ[cadence]
    prev = d - (pd.Timedelta(weeks=1) if freq == "W" else pd.DateOffset(months=1))
    data = ReportData(
        cadence,
        d,
        pd.Series([], dtype=float),
        read_partition(con, "forecasts", cadence, as_of),
        read_ledger(con, cadence),
        read_partition(con, "backtest_accuracy", cadence, as_of),
        0.0,
        pd.DataFrame(),
    )
    con.execute(
        _states_sql(history_table, types), {"d": d.to_pydatetime(), "prev": prev.to_pydatetime()}
    )
    try:
        return _from_states(con, data, freq, show_periods, top)
    finally:
        con.execute(f"drop table if exists {_STATES}")


def _from_states(
    con: duckdb.DuckDBPyConnection, data: ReportData, freq: str, show_periods: int, top: int
) -> ReportData:
    """Fill actuals, open pipeline and movements of `data` from the temp states table."""
    d, forecast, unit = data.as_of, data.forecast, _UNIT[freq]
    end_p = period_start(d, freq)
    state = f"select * from {_STATES} where at_d"

    # actuals: won deals known at d, by the period of their recorded close date, before end_p
    per_period = con.execute(
        f"""
        with st as ({state})
        select date_trunc('{unit}', close_date)::date as period, sum(amount_usd) as usd
        from st where is_won and close_date < $end
        group by 1 order by 1
        """,
        {"end": end_p.date()},
    ).fetchall()
    if per_period:
        idx = period_index(pd.Timestamp(per_period[0][0]), end_p, freq)[:-1]
        actuals = (
            pd.Series({pd.Timestamp(p): float(v) for p, v in per_period}, dtype=float)
            .reindex(idx, fill_value=0.0)
            .astype(float)
            .rename(None)
        )
    else:
        actuals = pd.Series([], index=pd.DatetimeIndex([]), dtype=float)
    actuals.index = pd.DatetimeIndex(actuals.index)
    actuals = actuals.iloc[-show_periods:]

    # open pipeline with a recorded close date inside the forecast horizon
    horizon = int(forecast["horizon"].max()) if len(forecast) else 1
    start = period_start(d, freq)
    end = next_periods(start, horizon, freq)[-1]
    (pipeline,) = con.execute(
        f"""
        with st as ({state})
        select coalesce(sum(amount_usd), 0.0) from st
        where not is_closed and date_trunc('{unit}', close_date) >= $start
          and date_trunc('{unit}', close_date) < $end
        """,
        {"start": start.date(), "end": end.date()},
    ).fetchone()

    # top movements since the previous as-of (the rules of `movements_since`)
    moves = con.execute(
        f"""
        with
        b as ({state}),
        a as (select * from {_STATES} where at_prev),
        j as (
            select b.*, a.opportunity_id is not null as known,
                   coalesce(a.is_won, false) as was_won,
                   coalesce(a.is_closed, false) as was_closed,
                   a.close_date as close_date_prev, a.amount_usd as amount_usd_prev
            from b left join a on a.opportunity_id = b.opportunity_id
        ),
        m as (
            select j.*,
                case
                    when known and is_won and not was_won then 'won'
                    when known and is_closed and not is_won and not was_closed then 'lost'
                    when not known and not is_closed then 'new'
                    when known and not is_closed and close_date > close_date_prev then 'pushed'
                end as move
            from j
        )
        select
            opportunity_id,
            move,
            stage_name as stage,
            (case move
                when 'won' then amount_usd
                when 'lost' then -amount_usd_prev
                when 'new' then amount_usd
                else -amount_usd
            end)::double as impact_usd,
            segment,
            region,
            close_date
        from m
        where move is not null
        order by abs(impact_usd) desc, opportunity_id
        limit {int(top)}
        """
    ).df()
    moves["close_date"] = pd.to_datetime(moves["close_date"]).dt.date
    data.actuals = actuals
    data.open_pipeline = float(pipeline)
    data.movements = moves.reset_index(drop=True)
    return data


def _scale(vals, lo, hi, out_lo, out_hi):
    span = (hi - lo) or 1.0
    return out_lo + (np.asarray(vals, dtype=float) - lo) / span * (out_hi - out_lo)


def _money(v: float) -> str:
    v = float(v)
    sign, a = ("-" if v < 0 else ""), abs(v)
    if a >= 1e6:
        return f"{sign}${a / 1e6:,.2f}M"
    if a >= 1e3:
        return f"{sign}${a / 1e3:,.0f}k"
    return f"{sign}${a:,.0f}"


def forecast_chart_svg(data: ReportData) -> str:
    """Actuals (line), published forecast (dashed) with 95% and 80% bands, and past
    one-step-ahead ledger forecasts (dots)."""
    fc = data.forecast[data.forecast["series_key"] == TOTAL].sort_values("period_start")
    x_dates = list(pd.DatetimeIndex(data.actuals.index)) + list(pd.to_datetime(fc["period_start"]))
    if not x_dates:
        return "<p>No data.</p>"
    xi = {d: i for i, d in enumerate(x_dates)}
    ymax = (
        max(
            [float(data.actuals.max() if len(data.actuals) else 0)]
            + [float(fc["hi95"].max() if len(fc) else 0)]
        )
        * 1.08
        or 1.0
    )
    X = lambda i: _scale(i, 0, max(len(x_dates) - 1, 1), PAD, W - 16)  # noqa: E731
    Y = lambda v: _scale(v, 0, ymax, H - 36, 14)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="Actual vs forecast">'
    ]
    for k in range(5):  # grid + y labels
        v = ymax * k / 4
        y = float(Y(v))
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 16}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text x="{PAD - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#6b7280">{_money(v)}</text>'
        )
    step = max(1, len(x_dates) // 8)
    for i, dte in enumerate(x_dates):
        if i % step == 0:
            parts.append(
                f'<text x="{float(X(i)):.1f}" y="{H - 14}" font-size="11" '
                f'text-anchor="middle" fill="#6b7280">{dte:%Y-%m-%d}</text>'
            )
    if len(fc):
        idx = [xi[pd.Timestamp(d)] for d in fc["period_start"]]
        for lo, hi, color in (("lo95", "hi95", "#dbeafe"), ("lo80", "hi80", "#93c5fd")):
            top = " ".join(
                f"{float(X(i)):.1f},{float(Y(v)):.1f}" for i, v in zip(idx, fc[hi], strict=True)
            )
            bot = " ".join(
                f"{float(X(i)):.1f},{float(Y(v)):.1f}"
                for i, v in zip(reversed(idx), reversed(list(fc[lo])), strict=True)
            )
            parts.append(f'<polygon points="{top} {bot}" fill="{color}" opacity="0.8"/>')
        pts = " ".join(
            f"{float(X(i)):.1f},{float(Y(v)):.1f}" for i, v in zip(idx, fc["point"], strict=True)
        )
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="#1d4ed8" stroke-width="2" '
            'stroke-dasharray="6 4"/>'
        )
    if len(data.actuals):
        pts = " ".join(
            f"{float(X(i)):.1f},{float(Y(v)):.1f}" for i, v in enumerate(data.actuals.to_numpy())
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#111827" stroke-width="2"/>')
    led = data.ledger
    if len(led):
        one = led[(led["series_key"] == TOTAL) & (led["horizon"] == 1)]
        for r in one.itertuples(index=False):
            d = pd.Timestamp(r.period_start)
            if d in xi and d < data.as_of:
                parts.append(
                    f'<circle cx="{float(X(xi[d])):.1f}" cy="{float(Y(r.point)):.1f}" '
                    'r="3.5" fill="#f59e0b"><title>published 1-step forecast '
                    f"{_money(r.point)}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def accuracy_trend(data: ReportData) -> pd.DataFrame:
    """Per as-of: accuracy (1 - |e|/actual) of the one-step-ahead published total, scored
    against actuals known at the report's as-of."""
    led = data.ledger
    if led.empty:
        return pd.DataFrame(columns=["as_of", "period_start", "point", "actual", "accuracy"])
    one = led[(led["series_key"] == TOTAL) & (led["horizon"] == 1)].copy()
    one["period_start"] = pd.to_datetime(one["period_start"])
    act = data.actuals.rename("actual")
    j = one.merge(act, left_on="period_start", right_index=True, how="inner")
    j = j[j["actual"] > 0]
    j["accuracy"] = 1 - (j["actual"] - j["point"]).abs() / j["actual"]
    return j[["as_of", "period_start", "point", "actual", "accuracy"]].sort_values("as_of")


def accuracy_svg(trend: pd.DataFrame) -> str:
    if trend.empty:
        return "<p>No published forecast has been scored yet (the ledger fills as weeks pass).</p>"
    w, h = 900, 180
    vals = trend["accuracy"].clip(lower=0).to_numpy()
    X = lambda i: _scale(i, 0, max(len(vals) - 1, 1), PAD, w - 16)  # noqa: E731
    Y = lambda v: _scale(v, 0.5, 1.0, h - 24, 10)  # noqa: E731
    yt = float(Y(ACCURACY_TARGET))
    pts = " ".join(f"{float(X(i)):.1f},{float(Y(max(v, 0.5))):.1f}" for i, v in enumerate(vals))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
        f'height="{h}"><line x1="{PAD}" y1="{yt:.1f}" x2="{w - 16}" y2="{yt:.1f}" '
        f'stroke="#dc2626" stroke-dasharray="4 3"/><text x="{PAD - 6}" y="{yt + 4:.1f}" '
        f'font-size="11" text-anchor="end" fill="#dc2626">92%</text>'
        f'<polyline points="{pts}" fill="none" stroke="#059669" stroke-width="2"/>'
        + "".join(
            f'<circle cx="{float(X(i)):.1f}" cy="{float(Y(max(v, 0.5))):.1f}" r="3" '
            f'fill="#059669"><title>{v:.1%}</title></circle>'
            for i, v in enumerate(vals)
        )
        + "</svg>"
    )


def _table(df: pd.DataFrame, money_cols=(), pct_cols=()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            if c in money_cols:
                s, cls = _money(v), ' class="num"'
            elif c in pct_cols:
                s, cls = (f"{v:.1%}" if pd.notna(v) else "n/a"), ' class="num"'
            elif isinstance(v, (pd.Timestamp, dt.datetime)):
                s, cls = f"{v:%Y-%m-%d}", ""
            elif isinstance(v, dt.date):
                s, cls = v.isoformat(), ""
            else:
                s, cls = str(v), ""
            cells.append(f"<td{cls}>{html.escape(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary(data: ReportData) -> dict:
    fc = data.forecast[data.forecast["series_key"] == TOTAL]
    fsum = float(fc["point"].sum())
    trend = accuracy_trend(data)
    bt = data.backtest_accuracy
    bt1 = bt[(bt["series_key"] == TOTAL) & (bt["horizon"] == 1)]["accuracy"]
    return {
        "next_period": float(fc.sort_values("horizon")["point"].iloc[0]) if len(fc) else 0.0,
        "horizon_total": fsum,
        "open_pipeline": data.open_pipeline,
        "coverage": data.open_pipeline / fsum if fsum > 0 else float("nan"),
        "backtest_accuracy_h1": float(bt1.iloc[0]) if len(bt1) else float("nan"),
        "ledger_accuracy_h1": float(trend["accuracy"].mean()) if len(trend) else float("nan"),
    }


CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#111827;max-width:960px}h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:#6b7280;font-size:13px}.kpis{display:flex;gap:12px;margin:16px 0}
.kpi{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;flex:1}
.kpi b{display:block;font-size:20px;margin-top:2px}table{border-collapse:collapse;width:100%;
font-size:13px}th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.legend span{margin-right:14px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px}"""


def render_html(data: ReportData) -> str:
    s = summary(data)
    fc = data.forecast
    tot = fc[fc["series_key"] == TOTAL].sort_values("horizon")[
        ["period_start", "model", "point", "lo80", "hi80", "lo95", "hi95"]
    ]
    seg = (
        fc[fc["series_key"] != TOTAL]
        .groupby("series_key", as_index=False)[["point", "lo80", "hi80"]]
        .sum()
        .rename(columns={"point": "horizon total"})
    )
    trend = accuracy_trend(data)
    mv = data.movements
    kpi = (
        f'<div class="kpis"><div class="kpi">Next {data.cadence[:-2]} forecast'
        f'<b>{_money(s["next_period"])}</b></div><div class="kpi">Forecast, next '
        f'{len(tot)} periods<b>{_money(s["horizon_total"])}</b></div><div class="kpi">'
        f'Pipeline coverage<b>{s["coverage"]:.2f}×</b><span class="muted">open pipeline '
        f'{_money(s["open_pipeline"])}</span></div><div class="kpi">Backtest accuracy '
        f'(h=1)<b>{s["backtest_accuracy_h1"]:.1%}</b><span class="muted">target 92%'
        "</span></div></div>"
    )
    legend = (
        '<div class="legend muted"><span><i class="sw" style="background:#111827"></i>'
        'actual</span><span><i class="sw" style="background:#1d4ed8"></i>forecast</span>'
        '<span><i class="sw" style="background:#93c5fd"></i>80% interval</span><span>'
        '<i class="sw" style="background:#dbeafe"></i>95% interval</span><span><i '
        'class="sw" style="background:#f59e0b"></i>published 1-step forecasts</span></div>'
    )
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Bookings forecast — {data.cadence} — {data.as_of.date()}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Bookings forecast ({data.cadence}) as of {data.as_of.date()}</h1>",
        '<div class="muted">Closed-won bookings in USD. Forecast uses only data recorded before '
        "the as-of date.</div>",
        kpi,
        "<h2>Actual vs forecast</h2>",
        legend,
        forecast_chart_svg(data),
        "<h2>Forecast (total)</h2>",
        _table(tot, money_cols={"point", "lo80", "hi80", "lo95", "hi95"}),
        "<h2>By segment and region (sum over the horizon)</h2>",
        _table(seg, money_cols={"horizon total", "lo80", "hi80"}),
        "<h2>Accuracy trend (published one-step forecasts, total)</h2>",
        accuracy_svg(trend),
        _table(trend.tail(12), money_cols={"point", "actual"}, pct_cols={"accuracy"})
        if len(trend)
        else "",
        "<h2>Top movements since the previous period</h2>",
        _table(mv, money_cols={"impact_usd"}) if len(mv) else "<p>No movements.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def render_markdown(data: ReportData) -> str:
    s = summary(data)
    lines = [
        f"**Executive summary — {data.cadence} as of {data.as_of.date()}**",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| next period forecast | {_money(s['next_period'])} |",
        f"| forecast over horizon | {_money(s['horizon_total'])} |",
        f"| open pipeline (close date in horizon) | {_money(s['open_pipeline'])} |",
        f"| pipeline coverage | {s['coverage']:.2f}× |",
        f"| backtest accuracy h=1 (target 92%) | {s['backtest_accuracy_h1']:.1%} |",
    ]
    if np.isfinite(s["ledger_accuracy_h1"]):
        lines.append(f"| ledger accuracy h=1 | {s['ledger_accuracy_h1']:.1%} |")
    if len(data.movements):
        lines += ["", "| top movement | move | impact |", "|---|---|---:|"]
        for r in data.movements.head(5).itertuples(index=False):
            lines.append(
                f"| {r.opportunity_id} ({r.segment}/{r.region}) | {r.move} | "
                f"{_money(r.impact_usd)} |"
            )
    return "\n".join(lines)


def write_report(data: ReportData, out_dir: Path) -> Path:
    """Write `<cadence>_<as_of>.html` and refresh `<cadence>_latest.html`, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = render_html(data)
    target = out_dir / f"{data.cadence}_{data.as_of:%Y-%m-%d}.html"
    for path in (target, out_dir / f"{data.cadence}_latest.html"):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".html", dir=out_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    return target
