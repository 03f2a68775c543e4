"""Publishing after real dbt incremental builds (reports/publish.py, `_plan_by_key`).

One module-scoped story on a small org: a full `dbt run` and a fresh publish; a week advanced
(merged the way dlt merges, plus a late touchpoint file) and an incremental `dbt run`: the four
opportunity-keyed marts are patched from dbt's change set without hashing; a publish with no
dbt run in between leaves them unhashed; two dbt runs without a publish, a `--full-refresh`, a
warehouse mart edited outside dbt and a hand-edited published file each break the chain and
the row-hash path (or a fresh file) is taken - and the chain is picked up again after a hash
publish. After every publish every published table equals the warehouse (EXCEPT ALL both ways,
row counts, columns).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from assets.attribution.warehouse import build_data_driven
from assets.dbt.incremental_check import (
    add_touchpoints,
    load_warehouse,
    merge_like_dlt,
    run_dbt,
)
from reports.publish import publish_marts
from sandbox.org import advance, generate

pytestmark = pytest.mark.slow

KEYED = {  # the opportunity-keyed incremental marts, as published
    "main.opportunities",
    "main.opportunity_history",
    "main.attribution_touchpoints",
    "main.pipeline_snapshots",
}
INCREMENTAL_MODELS = [
    "int_opportunity_states_sequenced",
    "int_opportunity_stage_entries_aggregated",
    "int_opportunity_process_checked",
    "int_opportunity_journeys",
    *(k.split(".")[1] for k in sorted(KEYED)),
]


def mismatches(warehouse: Path, marts: Path) -> dict[str, tuple]:
    """Per warehouse relation of `marts`: (rows only in the warehouse, rows only in the published
    copy, row counts differ, columns differ); plus the relations missing on either side."""
    out: dict[str, tuple] = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{warehouse}' as w (read_only)")
        con.execute(f"attach '{marts}' as p (read_only)")

        def names(cat: str, schema: str) -> set[str]:
            return {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = ? "
                    "and table_schema = ? and table_name not like 'publish_%'",
                    [cat, schema],
                ).fetchall()
            }

        wanted, have = names("w", "marts"), names("p", "main")
        if wanted != have:
            out["<relations>"] = (sorted(wanted - have), sorted(have - wanted))
        for name in sorted(wanted & have):
            w, p = f"w.marts.{name}", f"p.main.{name}"
            only = [
                con.execute(f"select count(*) from (from {a} except all from {b})").fetchone()[0]
                for a, b in ((w, p), (p, w))
            ]
            counts = [con.execute(f"select count(*) from {x}").fetchone()[0] for x in (w, p)]
            cols = [
                [(c[0], str(c[1])) for c in con.execute(f"select * from {x} limit 0").description]
                for x in (w, p)
            ]
            if only != [0, 0] or counts[0] != counts[1] or cols[0] != cols[1]:
                out[name] = (*only, counts, cols[0] == cols[1])
    return out


def _sql(warehouse: Path, sql: str, params: list | None = None, read_only: bool = True) -> list:
    with duckdb.connect(str(warehouse), read_only=read_only) as con:
        return con.execute(sql, params or []).fetchall()


class Story:
    def __init__(self, home: Path) -> None:
        self.home, self.target = home, home / "target"
        self.warehouse, self.marts = home / "warehouse.duckdb", home / "marts.duckdb"
        self.org = generate("small", seed=41, end=date(2026, 6, 1))
        self.loads = 0
        self.steps: dict[str, dict] = {}

    def dbt(self, *args: str, command: str = "run") -> None:
        run_dbt([command, *args], self.home, self.target)
        with duckdb.connect(str(self.warehouse)) as con:  # the weekly job's attribution step
            build_data_driven(con)

    def week(self) -> None:
        """One week of changes merged the way dlt merges, then an incremental dbt run."""
        self.loads += 1
        new = advance(self.org, 7)
        merge_like_dlt(self.org, new, self.warehouse, load_id=f"9999999999.{self.loads:06d}")
        self.org = new
        add_touchpoints(self.warehouse, 10 + self.loads, datetime(2026, 7, self.loads))
        self.dbt()

    def publish(self, step: str) -> None:
        result = publish_marts(self.warehouse, self.marts)
        state = {
            r[0]: r[1:]
            for r in _sql(
                self.warehouse,
                "select model, build_id, previous_build_id, previous_as_of_date, "
                "changed_opportunities from intermediate.incremental_state",
            )
        }
        with duckdb.connect(str(self.marts), read_only=True) as con:
            recorded = {
                r[0]: r[1:]
                for r in con.execute(
                    "select table_name, build_id, patched_by from publish_tables"
                ).fetchall()
            }
        self.steps[step] = {
            "result": result,
            "mismatches": mismatches(self.warehouse, self.marts),
            "state": state,
            "recorded": recorded,
        }


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Story:
    s = Story(tmp_path_factory.mktemp("publish_dbt"))
    load_warehouse(s.org, s.warehouse)
    _sql(
        s.warehouse,
        "create schema quality; create table quality.quarantine_ids (object varchar, "
        "record_id varchar, rule varchar, reason varchar, detected_at timestamp)",
        read_only=False,
    )
    # seeds + models (data tests are not what this is about)
    s.dbt(
        "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test", command="build"
    )
    s.publish("full")
    # the rows the weekly snapshot's pre-hook rebuilds besides the changed opportunities
    s.week()
    s.steps["weekly_rows"] = _sql(
        s.warehouse,
        "select count(*) from marts.pipeline_snapshots as p, intermediate.incremental_state as s "
        "where s.model = 'marts.pipeline_snapshots' and p.snapshot_date > s.previous_as_of_date "
        "and p.opportunity_id not in (select opportunity_id from intermediate.incremental_changed "
        "where model = 'marts.pipeline_snapshots')",
    )[0][0]
    s.publish("keyed")
    s.publish("no_build")
    s.publish("no_build_again")
    # a warehouse made before the build ids (dbt's on-run-start adds the columns back), then
    # two builds without a publish in between
    _sql(
        s.warehouse,
        "alter table intermediate.incremental_state drop column previous_as_of_date; "
        "alter table intermediate.incremental_state drop column previous_build_id; "
        "alter table intermediate.incremental_state drop column build_id",
        read_only=False,
    )
    s.week()
    s.week()
    s.publish("two_builds")
    s.dbt("--full-refresh", "--select", *INCREMENTAL_MODELS)
    s.publish("full_refresh")
    # an opportunity the next build does not touch loses its mart row outside dbt
    _sql(
        s.warehouse,
        "delete from marts.opportunities where opportunity_id = (select min(opportunity_id) "
        "from marts.opportunities where is_closed)",
        read_only=False,
    )
    s.week()
    s.publish("edited_warehouse")
    s.dbt()  # a build that finds nothing changed
    s.publish("no_change_build")
    with duckdb.connect(str(s.marts)) as con:  # someone writes into the analysts' file
        con.execute("delete from main.opportunity_history where rowid = 0")
    s.publish("edited_file")
    return s


def test_every_publish_equals_the_warehouse(story):
    assert set(story.steps) - {"weekly_rows"} == {
        "full",
        "keyed",
        "no_build",
        "no_build_again",
        "two_builds",
        "full_refresh",
        "edited_warehouse",
        "no_change_build",
        "edited_file",
    }
    for step, record in story.steps.items():
        if step != "weekly_rows":
            assert record["mismatches"] == {}, step
            assert set(record["result"].tables) >= KEYED | {"main.attribution_data_driven"}


def test_a_week_is_patched_by_key_without_hashing(story):
    full, keyed = story.steps["full"]["result"], story.steps["keyed"]["result"]
    assert full.mode == "full"
    assert keyed.mode == "incremental" and set(keyed.keyed) == KEYED
    assert set(keyed.keyed) <= set(keyed.patched)
    state = story.steps["keyed"]["state"]
    first = story.steps["full"]["state"]
    for key in KEYED:
        model = "marts." + key.split(".")[1]
        build_id, previous, _, changed = state[model]
        # the build replaced the one the full publish recorded, and recomputed some deals
        assert previous == first[model][0] and build_id != previous and changed > 0
    # none of their rows was hashed: only the other tables' rows (each once: warehouse side,
    # plus the published side of the ones that changed)
    others = sum(rows for name, rows in keyed.tables.items() if name not in KEYED)
    assert 0 < keyed.hashed_rows <= 2 * others
    assert keyed.rows_deleted > 0 and keyed.rows_inserted > 0
    recorded = story.steps["keyed"]["recorded"]
    for key in KEYED:  # the published file records the build it now holds
        model = "marts." + key.split(".")[1]
        assert recorded[key] == (state[model][0], "key")


def test_new_weeks_of_unchanged_deals_are_part_of_the_snapshot_patch(story):
    """pipeline_snapshots gets rows of a new week for every open deal, changed or not: the key
    patch must take them too (else the equality above fails)."""
    assert story.steps["weekly_rows"] > 0
    assert story.steps["keyed"]["state"]["marts.pipeline_snapshots"][2] is not None


def test_no_dbt_build_since_the_publish_hashes_none_of_them(story):
    first, again = story.steps["no_build"]["result"], story.steps["no_build_again"]["result"]
    assert first.rewritten == () and first.patched == ()
    assert again.mode == "unchanged"
    # exactly the rows of the tables that are not dbt incremental models, each hashed once
    assert again.hashed_rows == sum(r for n, r in again.tables.items() if n not in KEYED)


def test_two_builds_without_a_publish_take_the_hash_path(story):
    result = story.steps["two_builds"]["result"]
    assert result.keyed == ()
    assert KEYED & set(result.patched + result.rewritten) == KEYED  # all changed, by hash
    state, recorded = story.steps["two_builds"]["state"], story.steps["two_builds"]["recorded"]
    for key in KEYED:  # the hash publish records the build ids too (the chain resumes below)
        assert recorded[key][0] == state["marts." + key.split(".")[1]][0]


def test_a_full_refresh_takes_the_hash_path(story):
    result = story.steps["full_refresh"]["result"]
    assert result.keyed == () and result.mode in ("incremental", "unchanged")
    state = story.steps["full_refresh"]["state"]
    assert all(state["marts." + k.split(".")[1]][1] is None for k in KEYED)  # no previous
    # the full refresh gives the same rows: diffed, found equal
    assert not KEYED & set(result.patched + result.rewritten)


def test_a_mart_edited_outside_dbt_is_caught_by_the_row_counts(story):
    result = story.steps["edited_warehouse"]["result"]
    assert "main.opportunities" in result.patched and "main.opportunities" not in result.keyed
    # the others resume the chain the hash publish after the full refresh recorded
    assert set(result.keyed) == KEYED - {"main.opportunities"}


def test_a_build_that_changed_nothing_keeps_the_chain(story):
    step = story.steps["no_change_build"]
    # incremental builds with no changed opportunity: not full builds, so they name the build
    # they replaced and publish stays on the key path (it hashed them all before)
    assert {m: (v[1] is not None, v[3]) for m, v in step["state"].items()} == {
        m: (True, 0) for m in step["state"]
    }
    result = step["result"]
    others = sum(rows for name, rows in result.tables.items() if name not in KEYED)
    assert result.hashed_rows <= 2 * others, (result.mode, result.reason)  # keyed marts unread
    # the file holds this build now, so next week's build continues the chain
    built = {"main." + m.split(".")[1]: v[0] for m, v in step["state"].items()}
    recorded = {t: step["recorded"][t][0] for t in KEYED}
    assert recorded == {t: built[t] for t in KEYED}


def test_a_hand_edited_published_file_is_rebuilt(story):
    result = story.steps["edited_file"]["result"]
    assert result.mode == "full" and "changed since the last publish" in result.reason
