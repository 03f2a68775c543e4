"""Patching the published `attribution_data_driven` from the journeys' change set.

Used by reports/publish.py.

The warehouse relation is a view (`assets.attribution.warehouse.touch_view_sql`): per touch of
`intermediate.int_opportunity_journeys` (a dbt model incremental by opportunity) two rows, a
Markov and a Shapley credit. A touch's row depends on its own opportunity's journey rows and, for
the Markov credit, on the channels' removal effects (`marts.attribution_channel_effects`, refitted
every run: they move a little every week). So from the published copy to the warehouse view:

* the rows of the opportunities the journeys' dbt build recomputed (`incremental_changed`) are
  deleted and re-inserted, computed by the view's own SQL over those opportunities' journey rows
  only (a view's rows of one opportunity depend on that opportunity's rows alone);
* when the Markov removal effects differ from the ones published with the copy (the published
  `attribution_channel_effects`, written by the same publish), the five credit columns of the
  other opportunities' Markov rows are updated from `markov_weights_sql` (the same expression as
  the view, bit for bit); DuckDB rewrites only those columns, not the touch's 17 others;
* Shapley rows of unchanged opportunities are left alone (their credit depends on the journey).

Preconditions (else the view is copied whole, as before): the warehouse view's SQL is exactly the
one `touch_view_sql` generates (compared in DuckDB's normalised form, so a redefined view is
never patched with a stale formula), the published table has the same columns, and the journeys'
build chain holds: the published copy records (`publish_tables.build_id`) the journeys build it was
computed from, and the warehouse's build is that one or replaced it incrementally. The patch then
checks its counts (deleted, updated = the Markov rows left, inserted as planned, the final row
count = two rows per journey touch); a miss rewrites the table whole in the copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from assets.attribution.warehouse import (
    CREDIT_COLUMNS,
    JOURNEYS_TABLE,
    TOUCH_TABLE,
    markov_weights_sql,
    touch_view_sql,
)

logger = logging.getLogger(__name__)

EXPECTED_VIEW = "publish_expected_touch_view"


@dataclass
class CreditsPlan:
    """What the patch of the touch credits does (set by `plan_credits`)."""

    keys: str  # temp table of the recomputed opportunity ids (may be empty)
    effects_changed: bool  # Markov removal effects differ from the published ones
    rows: int  # rows of the warehouse view (two per journey touch)
    inserted: int  # rows of the recomputed opportunities in the warehouse view
    previous_rows: int  # rows of the published copy
    source: str  # the journeys, qualified in the warehouse catalog
    effects: str  # the channel effects, qualified in the warehouse catalog
    have: frozenset[str]  # the journeys' columns (the view's optional columns follow them)


def view_matches(con: duckdb.DuckDBPyConnection, catalog: str, have: set[str]) -> bool:
    """Whether `TOUCH_TABLE` in `catalog` is defined by the SQL `touch_view_sql` generates now
    (DuckDB's normalised text of both; the expected one is bound as a temp view in `catalog`)."""
    schema, name = TOUCH_TABLE.split(".")
    row = con.execute(
        "select sql from duckdb_views() where database_name = ? and schema_name = ? "
        "and view_name = ?",
        [catalog, schema, name],
    ).fetchone()
    if row is None:
        return False
    cur = con.cursor()
    try:
        cur.execute(f"use {catalog}")
        sql = touch_view_sql(EXPECTED_VIEW, have=have).replace("create view", "create temp view", 1)
        cur.execute(sql)
        expected = cur.execute(
            "select sql from duckdb_views() where temporary and view_name = ?", [EXPECTED_VIEW]
        ).fetchone()[0]
        cur.execute(f"drop view if exists temp.main.{EXPECTED_VIEW}")
    except duckdb.Error as exc:
        logger.info("publish: the expected %s does not bind (%s)", TOUCH_TABLE, exc)
        return False
    finally:
        cur.close()
    return expected.split(" AS ", 1)[1] == row[0].split(" AS ", 1)[1]


def _markov_effects(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple]:
    return con.execute(
        f"select channel, removal_effect from {relation} where attribution_model = 'markov' "
        "order by channel, removal_effect"
    ).fetchall()


def plan_credits(
    con: duckdb.DuckDBPyConnection,
    *,
    warehouse: str,
    source: str,
    effects: str,
    have: set[str],
    published: str,
    published_effects: str,
    build_id: str | None,
    previous_build_id: str | None,
    changed_opportunities: int | None,
    recorded_build_id: str | None,
    recorded_rows: int,
    changed_table: str,
    keys: str,
) -> tuple[CreditsPlan | None, str]:
    """Plan the patch of the published touch credits (`published`, in the published file's
    catalog; `published_effects` its channel effects) to the warehouse view (catalog
    `warehouse`; `source` / `effects` the journeys and channel effects there, qualified, `have`
    the journeys' columns). Returns (plan, '') or (None, why the view must be copied whole)."""
    if build_id is None or recorded_build_id is None:
        return None, "no journeys build id recorded"
    if build_id != recorded_build_id:
        if changed_opportunities is None:
            return None, "a full build of the journeys since the last publish"
        if previous_build_id != recorded_build_id:
            return None, "another build of the journeys since the last publish"
    if not view_matches(con, warehouse, have):
        return None, f"{TOUCH_TABLE} is not the view this publish knows how to patch"
    try:
        con.execute(f"create or replace temp table {keys} (opportunity_id varchar)")
        if build_id != recorded_build_id:
            con.execute(
                f"insert into {keys} select distinct opportunity_id from {changed_table} "
                "where model = ?",
                [JOURNEYS_TABLE],
            )
            count = con.execute(f"select count(*) from {keys}").fetchone()[0]
            if count != changed_opportunities:
                return None, (
                    f"{count} changed journeys listed, {changed_opportunities} in the state"
                )
        previous = con.execute(f"select count(*) from {published}").fetchone()[0]
        if previous != recorded_rows:
            return None, f"{previous} rows published, {recorded_rows} recorded"
        touches = con.execute(
            f"select count(*) from {source} "
            "where opportunity_id is not null and channel is not null"
        ).fetchone()[0]
        # the recomputed opportunities' journey rows by rowid: the insert then reads just those
        # rows (a semi join in the view's source would read every column of every journey row)
        con.execute(
            f"create or replace temp table {keys}_rows as select rowid as r, "
            f"opportunity_id is not null and channel is not null as counted from {source} "
            f"where opportunity_id in (select opportunity_id from {keys})"
        )
        changed = con.execute(
            f"select count(*) filter (where counted) from {keys}_rows"
        ).fetchone()[0]
        effects_changed = _markov_effects(con, effects) != _markov_effects(con, published_effects)
    except duckdb.Error as exc:
        return None, f"cannot plan the credits patch ({exc})"
    return CreditsPlan(
        keys,
        effects_changed,
        2 * int(touches),
        2 * int(changed),
        int(previous),
        source,
        effects,
        frozenset(have),
    ), ""


def apply_credits(
    con: duckdb.DuckDBPyConnection, plan: CreditsPlan, copy: str
) -> tuple[int, int, int] | str:
    """Patch `copy` (the published table in the file being written). Returns (deleted, updated,
    inserted), or why the counts do not add up (the caller then rewrites the table)."""
    deleted = con.execute(
        f"delete from {copy} where opportunity_id in (select opportunity_id from {plan.keys})"
    ).fetchone()[0]
    updated = 0
    if plan.effects_changed:
        sets = ", ".join(
            f"{col} = "
            + expr.format(credit="w.markov_credit", is_won="t.is_won", amount_usd="t.amount_usd")
            for col, expr in CREDIT_COLUMNS
        )
        updated = con.execute(
            f"update {copy} as t set {sets} "
            f"from ({markov_weights_sql(plan.source, plan.effects)}) as w "
            "where t.attribution_model = 'markov' and t.opportunity_id = w.opportunity_id "
            "and t.channel = w.channel"
        ).fetchone()[0]
        if 2 * updated != plan.previous_rows - deleted:
            return (
                f"{updated} Markov rows updated, {plan.previous_rows - deleted} rows left "
                "after the delete"
            )
    changed = f"(select * from {plan.source} where rowid in (select r from {plan.keys}_rows))"
    body = touch_view_sql("x", changed, plan.effects, plan.have).split(" as\n", 1)[1]
    inserted = con.execute(f"insert into {copy} {body}").fetchone()[0]
    rows = con.execute(f"select count(*) from {copy}").fetchone()[0]
    if inserted != plan.inserted or rows != plan.rows:
        return (
            f"inserted {inserted} rows (planned {plan.inserted}), {rows} rows "
            f"(the view has {plan.rows})"
        )
    return int(deleted), int(updated), int(inserted)
