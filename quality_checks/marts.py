"""Data-driven checks on key marts: found by their columns, added as soon as the tables exist.

A mart rule declares the columns it needs; `discover_mart_specs` scans the warehouse (schemas
`marts`, `attribution` and any other non-raw schema) and builds a suite for every table that has
them. So the pipeline waterfall (dbt: marts.pipeline_waterfall) and the attribution credits
(assets/attribution) are validated whatever their final table names, and nothing fails before
they are built. Mart rules are hard (must hold on every row) and never quarantine: a mart row
cannot be excluded downstream, so a failing mart rule fails the gate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from quality_checks.rules import CONSISTENCY, ROWS, Rule, TableSpec, quote

log = logging.getLogger(__name__)

RAW_SCHEMAS = frozenset({"salesforce", "marketing", "quality", "information_schema", "pg_catalog"})

WATERFALL_IN = ("start_usd", "created_usd", "pulled_in_usd", "increased_usd")
WATERFALL_OUT = ("decreased_usd", "won_usd", "lost_usd", "slipped_out_usd")
WATERFALL_COLUMNS = (*WATERFALL_IN, *WATERFALL_OUT, "end_usd")
CREDIT_GROUPS = (("journey_id", "model"), ("opportunity_id", "model"), ("conversion_id", "model"))
CREDIT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MartRuleDef:
    name: str
    required: tuple[str, ...]
    description: str


def waterfall_rule(table: str) -> Rule:
    """start + created + pulled_in + increased - decreased - won - lost - slipped_out = end."""
    plus = " + ".join(f"coalesce({quote(c)}, 0)" for c in WATERFALL_IN)
    minus = " - ".join(f"coalesce({quote(c)}, 0)" for c in WATERFALL_OUT)
    imbalance = f"({plus} - {minus} - coalesce({quote('end_usd')}, 0))"
    return Rule(
        name=f"{table}.waterfall_balances",
        dimension=CONSISTENCY,
        kind=ROWS,
        column="end_usd",
        fail_sql=f"abs({imbalance}) > 0.005",
        hard=True,
        gx_args={"_columns": list(WATERFALL_COLUMNS)},
        reason_sql=f"'waterfall off by ' || CAST(round({imbalance}, 2) AS VARCHAR) || ' USD'",
        description="start + created + pulled_in + increased - decreased - won - lost - "
        "slipped_out = end (to the cent)",
    )


def credits_rule(table: str, group: tuple[str, ...]) -> Rule:
    part = ", ".join(quote(c) for c in group)
    total = f"sum({quote('credit')}) OVER (PARTITION BY {part})"
    return Rule(
        name=f"{table}.credits_sum_to_one",
        dimension=CONSISTENCY,
        kind=ROWS,
        column="credit",
        fail_sql=f"abs({total} - 1) > {CREDIT_TOLERANCE}",
        hard=True,
        gx_args={"_window": True, "_columns": [*group, "credit"]},
        reason_sql=f"'credits of this {group[0]} and model sum to ' || CAST({total} AS VARCHAR)",
        description=f"attribution credits sum to 1 per {' and '.join(group)}",
    )


def mart_rules_for(table: str, columns: set[str]) -> list[Rule]:
    rules = []
    if set(WATERFALL_COLUMNS) <= columns:
        rules.append(waterfall_rule(table))
    if "credit" in columns:
        for group in CREDIT_GROUPS:
            if set(group) <= columns:
                rules.append(credits_rule(table, group))
                break
    return rules


def _record_id(columns: list[str]) -> str:
    keys = [
        c
        for c in columns
        if c.endswith("_id") or c in ("week_start", "close_quarter", "segment", "model", "position")
    ]
    keys = keys[:5] or columns[:3]
    return " || '/' || ".join(f"coalesce(CAST({quote(c)} AS VARCHAR), '')" for c in keys)


def discover_mart_specs(con: duckdb.DuckDBPyConnection) -> list[TableSpec]:
    """A spec for every non-raw table that carries a known mart invariant's columns."""
    cols: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "ORDER BY table_schema, table_name, ordinal_position"
    ).fetchall():
        if schema in RAW_SCHEMAS or table.endswith("__dbt_tmp"):
            continue
        cols.setdefault((schema, table), []).append(column)
    specs = []
    for (schema, table), columns in sorted(cols.items()):
        rules = mart_rules_for(table, set(columns))
        if rules:
            specs.append(
                TableSpec(
                    object=f"{schema}.{table}",
                    schema=schema,
                    table=table,
                    id_column=columns[0],
                    rules=tuple(rules),
                    record_id_sql=_record_id(columns),
                    quarantine=False,
                )
            )
    if specs:
        log.info("mart checks apply to %s", ", ".join(s.label for s in specs))
    return specs
