"""Markdown for the Dagster UI (check metadata): expectations table and failing-row sample."""

from __future__ import annotations

from quality_checks.rules import DIMENSIONS
from quality_checks.score import TableResult


def _esc(s: object) -> str:
    return str(s if s is not None else "").replace("|", "\\|").replace("\n", " ")


def expectations_markdown(result: TableResult) -> str:
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    rules = sorted(result.rules, key=lambda r: (order.get(r.dimension, 99), -r.failed, r.name))
    lines = [
        f"**{result.label}**: score **{result.score:.2%}** (gate {result.gate:.0%}), "
        f"{result.counts.failed_rows}/{result.counts.rows} rows fail, "
        f"{result.counts.quarantined_rows} quarantined",
        "",
        "| dimension | column | expectation | checked | failed | % pass | hard |",
        "|---|---|---|---:|---:|---:|:-:|",
    ]
    for r in rules:
        lines.append(
            f"| {r.dimension} | {_esc(r.column)} | {_esc(r.description or r.name)} | "
            f"{r.checked:,} | {r.failed:,} | {r.pass_pct:.2f} | {'yes' if r.hard else ''} |"
        )
    return "\n".join(lines)


def samples_markdown(result: TableResult) -> str:
    if not result.samples:
        return "_no failing rows_"
    lines = [
        "| Salesforce Id | dimension | column | rule | reason |",
        "|---|---|---|---|---|",
    ]
    for s in result.samples:
        tier = " (hard, quarantined)" if s.get("tier") == "hard" else ""
        lines.append(
            f"| `{_esc(s['record_id'])}` | {_esc(s['dimension'])} | {_esc(s['column'])} | "
            f"{_esc(s['rule'])}{tier} | {_esc(s['reason'])} |"
        )
    return "\n".join(lines)
