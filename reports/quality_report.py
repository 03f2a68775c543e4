"""Self-contained HTML data-quality report (inline CSS + inline SVG; opens offline, no CDN).

Same content as the Dagster UI check metadata: per table the row-weighted score, per-dimension
scores, expectations (dimension, column, checked, failed, % pass) and a sample of failing rows
with their Salesforce Ids; plus a trend chart of scores over runs from quality.table_scores.

`render_report(data) -> str` is pure; `load_report_data(con)` reads the quality schema;
`write_report(warehouse, reports_dir)` writes `<reports>/data_quality/<run-ts>.html` and
`latest.html` (atomically) and returns the versioned path.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DIMENSIONS = ("completeness", "validity", "uniqueness", "integrity", "consistency", "freshness")
MAX_RUNS = 30


@dataclass
class ReportData:
    generated_at: dt.datetime
    tables: list[dict]  # latest table_scores row per table (+ "results", "trend")
    runs: list[dict]  # per run: run_id, checked_at, overall score, tables, blocked
    gate: float = 0.98
    run_id: str | None = None
    quarantine_by_rule: list[dict] = field(default_factory=list)


def _has(con, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quality' "
            "AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def load_report_data(con, run_id: str | None = None, max_runs: int = MAX_RUNS) -> ReportData:
    """Latest state of every table (as of `run_id` if given) and the score trend over runs."""
    now = dt.datetime.now(dt.UTC)
    if not _has(con, "table_scores"):
        return ReportData(generated_at=now, tables=[], runs=[], run_id=run_id)
    cutoff = ""
    params: list = []
    if run_id:
        cutoff = (
            "WHERE checked_at <= (SELECT max(checked_at) FROM quality.table_scores "
            "WHERE run_id = ?)"
        )
        params = [run_id]
    latest = _rows(
        con,
        f"""SELECT * FROM (
              SELECT *, row_number() OVER (PARTITION BY "table" ORDER BY checked_at DESC) AS rn
              FROM quality.table_scores {cutoff}) WHERE rn = 1 ORDER BY "table" """,
        params,
    )
    runs = overall_by_run(
        _rows(
            con,
            f"""SELECT run_id, checked_at, "table", "rows", failed_rows, passed
                FROM quality.table_scores {cutoff} ORDER BY checked_at, "table" """,
            params,
        ),
        max_runs,
    )
    run_ids = [r["run_id"] for r in runs]
    trend: dict[str, dict[str, float]] = {}
    if run_ids:
        marks = ", ".join("?" for _ in run_ids)
        for r in _rows(
            con,
            f'SELECT run_id, "table", score FROM quality.table_scores WHERE run_id IN ({marks})',
            run_ids,
        ):
            trend.setdefault(r["table"], {})[r["run_id"]] = r["score"]
    for t in latest:
        t["results"] = _rows(
            con,
            """SELECT expectation, dimension, "column", checked, failed, pass_pct, hard
               FROM quality.results WHERE run_id = ? AND "table" = ?
               ORDER BY failed DESC, expectation""",
            [t["run_id"], t["table"]],
        )
        t["trend"] = [trend.get(t["table"], {}).get(r) for r in run_ids]
        t["dimension_scores"] = json.loads(t.get("dimension_scores") or "{}")
        t["samples"] = json.loads(t.get("samples") or "[]")
        t["errors"] = json.loads(t.get("errors") or "[]")
        t["findings"] = json.loads(t.get("findings") or "[]")
        t["has_freshness"] = any(r["dimension"] == "freshness" for r in t["results"])
    quarantine = []
    if _has(con, "quarantine_ids"):
        quarantine = _rows(
            con,
            "SELECT object, rule, count(*) AS n FROM quality.quarantine_ids "
            "GROUP BY object, rule ORDER BY n DESC",
        )
    gate = latest[0]["gate"] if latest else 0.98
    return ReportData(now, latest, runs, gate, run_id, quarantine)


def overall_by_run(history: list[dict], max_runs: int = MAX_RUNS) -> list[dict]:
    """Overall score after each run, carrying forward tables the run did not validate.

    A run usually validates a subset of tables (one Dagster check per table); the pipeline's
    state after the run is its tables' new results plus every other table's latest one.
    """
    state: dict[str, dict] = {}
    snaps: dict[str, dict] = {}  # keeps the order in which runs first appear
    for h in history:
        state[h["table"]] = h
        rows = sum(t["rows"] for t in state.values())
        failed = sum(t["failed_rows"] for t in state.values())
        snaps[h["run_id"]] = {
            "run_id": h["run_id"],
            "checked_at": h["checked_at"],
            "score": 1 - failed / rows if rows else 1.0,
            "tables": len(state),
            "blocked": sum(1 for t in state.values() if not t["passed"]),
        }
    return list(snaps.values())[-max_runs:]


# ------------------------------------------------------------------------------------ render

CSS = """
body{font:13px/1.4 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2933;
background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:0}
.muted{color:#616e7c}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:12px 16px;min-width:150px}
.card .v{font-size:24px;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%;margin:6px 0 12px}
th,td{border:1px solid #e4e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.b{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;font-size:12px;
font-weight:600}
.ok{background:#e3f9e5;color:#1f7a35}.warn{background:#fff3c4;color:#8d6708}
.err{background:#ffe3e3;color:#ab091e}.bad{color:#ab091e;font-weight:600}
details{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:8px 12px;margin:8px 0}
summary{cursor:pointer}code{font-size:12px;background:#f0f4f8;padding:0 3px;border-radius:3px}
svg text{font:11px sans-serif;fill:#616e7c}
"""


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _badge(severity: str) -> str:
    cls = {"OK": "ok", "WARN": "warn", "ERROR": "err"}.get(severity, "warn")
    label = {"OK": "pass", "WARN": "pass (findings)", "ERROR": "BLOCKED"}.get(severity, severity)
    return f'<span class="b {cls}">{label}</span>'


def trend_svg(
    runs: list[dict], gate: float, width: int = 900, height: int = 220, lo: float | None = None
) -> str:
    """Line chart of the overall score per run, with the gate as a dashed line."""
    e = html.escape
    if not runs:
        return '<p class="muted">No runs yet.</p>'
    scores = [float(r["score"]) for r in runs]
    lo = lo if lo is not None else min(min(scores), gate) - 0.01
    lo = max(0.0, min(lo, 0.97))
    hi = 1.0
    pad_l, pad_r, pad_t, pad_b = 48, 16, 12, 28
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        return pad_l + (w * i / max(len(runs) - 1, 1) if len(runs) > 1 else w / 2)

    def y(v: float) -> float:
        return pad_t + h * (hi - v) / (hi - lo)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        'role="img" aria-label="score trend">'
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e4e7eb"/>'
        )
        parts.append(
            f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{100 * v:.1f}%</text>'
        )
    parts.append(
        f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(gate):.1f}" y2="{y(gate):.1f}" '
        'stroke="#ab091e" stroke-dasharray="5,4"/>'
    )
    parts.append(
        f'<text x="{width - pad_r}" y="{y(gate) - 4:.1f}" text-anchor="end" '
        f'style="fill:#ab091e">gate {100 * gate:.0f}%</text>'
    )
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(scores))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#2680c2" stroke-width="2"/>')
    for i, (r, v) in enumerate(zip(runs, scores, strict=True)):
        color = "#ab091e" if r.get("blocked") else "#2680c2"
        label = f"{e(str(r['run_id']))} {r['checked_at']}: {100 * v:.2f}%"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{color}">'
            f"<title>{label}</title></circle>"
        )
    step = max(1, len(runs) // 8)
    for i in range(0, len(runs), step):
        at = runs[i]["checked_at"]
        txt = at.strftime("%m-%d %H:%M") if hasattr(at, "strftime") else str(at)[:16]
        anchor = "end" if i == len(runs) - 1 and len(runs) > 1 else "middle"
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}">{e(txt)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: list[float | None], gate: float, width: int = 90, height: int = 24) -> str:
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if not pts:
        return ""
    lo = min(min(v for _, v in pts), gate) - 0.005
    n = max(len(values) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{2 + (width - 4) * i / n:.1f},{2 + (height - 4) * (1 - v) / max(1 - lo, 1e-9):.1f}"

    gy = 2 + (height - 4) * (1 - gate) / max(1 - lo, 1e-9)
    line = " ".join(xy(i, v) for i, v in pts)
    last = pts[-1]
    color = "#ab091e" if last[1] < gate else "#2680c2"
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<line x1="0" x2="{width}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#f29b9b" '
        f'stroke-dasharray="3,3"/><polyline points="{line}" fill="none" stroke="{color}" '
        f'stroke-width="1.5"/><circle cx="{xy(*last).split(",")[0]}" '
        f'cy="{xy(*last).split(",")[1]}" r="2.5" fill="{color}"/></svg>'
    )


def _fresh_cell(t: dict) -> str:
    """Freshness is a table-level finding (WARN), not a share of rows."""
    if t.get("findings"):
        return '<span class="b warn">STALE</span>'
    return "ok" if t.get("has_freshness") else "–"


def _table_section(t: dict) -> str:
    e = html.escape
    rows = []
    for r in t["results"]:
        cls = ' class="bad"' if r["failed"] else ""
        rows.append(
            f"<tr><td>{e(r['dimension'])}</td><td>{e(r['column'] or '')}</td>"
            f"<td><code>{e(r['expectation'])}</code></td><td class=n>{r['checked']:,}</td>"
            f"<td class=n{cls}>{r['failed']:,}</td><td class=n>{r['pass_pct']:.2f}</td>"
            f"<td>{'hard' if r['hard'] else ''}</td></tr>"
        )
    samples = "".join(
        f"<tr><td><code>{e(str(s['record_id']))}</code></td><td>{e(s['dimension'])}</td>"
        f"<td>{e(s['column'] or '')}</td><td><code>{e(s['rule'])}</code>"
        f"{' (hard, quarantined)' if s.get('tier') == 'hard' else ''}</td>"
        f"<td>{e(str(s['reason']))}</td></tr>"
        for s in t["samples"]
    )
    errors = "".join(f"<li class=bad>{e(x)}</li>" for x in t["errors"])
    errors += "".join(
        f'<li><span class="b warn">WARN</span> {e(x)}</li>' for x in t.get("findings", [])
    )
    dims = " · ".join(
        f"{d} {_pct(t['dimension_scores'].get(d))}"
        for d in DIMENSIONS
        if d in t["dimension_scores"]
    )
    if t.get("evaluation"):
        dims += f" · evaluation: {t['evaluation']}"
    open_ = " open" if t["severity"] != "OK" else ""
    return f"""<details{open_} id="{e(t["table"])}"><summary><h3 style="display:inline">
{e(t["table"])}</h3> {_badge(t["severity"])} score <b>{_pct(t["score"])}</b>
<span class=muted>({t["failed_rows"]:,} of {t["rows"]:,} rows fail,
{t["quarantined_rows"]:,} quarantined; run {e(str(t["run_id"]))})</span></summary>
<p class=muted>{e(dims)}</p>{f"<ul>{errors}</ul>" if errors else ""}
<table><tr><th>dimension</th><th>column</th><th>expectation</th><th>checked</th><th>failed</th>
<th>% pass</th><th>rule</th></tr>{"".join(rows)}</table>
{
        "<h4>Failing rows (sample)</h4><table><tr><th>Salesforce Id</th><th>dimension</th>"
        "<th>column</th><th>rule</th><th>reason</th></tr>" + samples + "</table>"
        if samples
        else "<p class=muted>No failing rows.</p>"
    }
</details>"""


def render_report(data: ReportData) -> str:
    e = html.escape
    tables = data.tables
    rows_total = sum(t["rows"] for t in tables)
    failed_total = sum(t["failed_rows"] for t in tables)
    overall = 1 - failed_total / rows_total if rows_total else 1.0
    blocked = [t for t in tables if not t["passed"]]
    quarantined = sum(t["quarantined_rows"] for t in tables)
    summary_rows = []
    for t in sorted(tables, key=lambda t: (t["passed"], t["score"])):
        dims = "".join(
            f"<td class=n>{_pct(t['dimension_scores'].get(d), 1)}</td>"
            if d != "freshness"
            else f"<td>{_fresh_cell(t)}</td>"
            for d in DIMENSIONS
        )
        summary_rows.append(
            f'<tr><td><a href="#{e(t["table"])}">{e(t["table"])}</a></td>'
            f"<td>{_badge(t['severity'])}</td><td class=n><b>{_pct(t['score'])}</b></td>{dims}"
            f"<td class=n>{t['rows']:,}</td><td class=n>{t['failed_rows']:,}</td>"
            f"<td class=n>{t['quarantined_rows']:,}</td>"
            f"<td>{sparkline(t['trend'], data.gate)}</td></tr>"
        )
    dim_head = "".join(f"<th>{d}</th>" for d in DIMENSIONS)
    status = (
        f'<span class="b err">{len(blocked)} table(s) BLOCKED</span> '
        + ", ".join(e(t["table"]) for t in blocked)
        if blocked
        else '<span class="b ok">all tables pass the gate</span>'
    )
    qrows = "".join(
        f"<tr><td>{e(q['object'])}</td><td><code>{e(q['rule'])}</code></td>"
        f"<td class=n>{q['n']:,}</td></tr>"
        for q in data.quarantine_by_rule
    )
    sections = "".join(
        _table_section(t) for t in sorted(tables, key=lambda t: (t["passed"], t["score"]))
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>salesops data-quality report</title><style>{CSS}</style></head><body>
<h1>Data-quality report</h1>
<p class=muted>Generated {e(data.generated_at.strftime("%Y-%m-%d %H:%M UTC"))}
{f"· run {e(data.run_id)}" if data.run_id else ""} · gate {100 * data.gate:.0f}% row-weighted
score and 100% of hard rules (unique Ids, valid references) on non-quarantined rows.</p>
<p>{status}</p>
<div class=cards>
<div class=card><div class=muted>overall score</div><div class=v>{_pct(overall)}</div></div>
<div class=card><div class=muted>tables</div><div class=v>{len(tables)}</div></div>
<div class=card><div class=muted>rows checked</div><div class=v>{rows_total:,}</div></div>
<div class=card><div class=muted>rows failing a rule</div><div class=v>{failed_total:,}</div>
</div>
<div class=card><div class=muted>rows quarantined</div><div class=v>{quarantined:,}</div></div>
</div>
<h2>Overall score over runs</h2>{trend_svg(data.runs, data.gate)}
<h2>Tables</h2>
<table><tr><th>table</th><th>status</th><th>score</th>{dim_head}<th>rows</th><th>failing</th>
<th>quarantined</th><th>trend</th></tr>{"".join(summary_rows)}</table>
<h2>Quarantine</h2>
{
        "<table><tr><th>object</th><th>rule</th><th>rows</th></tr>" + qrows + "</table>"
        if qrows
        else "<p class=muted>Nothing quarantined.</p>"
    }
<p class=muted>Rows failing a hard rule are listed in <code>quality.quarantine</code> and kept out
of the marts by dbt staging. Freshness is checked per table (newest row younger than the table's
window): a stale table is a WARN finding and does not change its score.</p>
<h2>Expectations and failing rows</h2>{sections}
</body></html>
"""


def write_report(warehouse: Path | str, reports_dir: Path | str, run_id: str | None = None) -> Path:
    """Render from the warehouse's quality schema; write `<day>_<run>.html` and `latest.html`."""
    from quality_checks import store

    with store.connect(warehouse) as con:
        data = load_report_data(con, run_id=run_id)
    text = render_report(data)
    out_dir = Path(reports_dir) / "data_quality"
    out_dir.mkdir(parents=True, exist_ok=True)
    # One file per run (every check of the run re-renders the same file), named by day and run.
    last = data.runs[-1] if data.runs else {"checked_at": data.generated_at, "run_id": "none"}
    stamp = f"{last['checked_at'].strftime('%Y%m%d')}_{str(last['run_id'])[:8]}"
    path = out_dir / f"{stamp}.html"
    for target in (path, out_dir / "latest.html"):
        tmp = target.with_suffix(".html.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    log.info("data-quality report written to %s", path)
    return path
