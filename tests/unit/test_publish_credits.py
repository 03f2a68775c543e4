"""The published `attribution_data_driven` patched from the journeys' change set
(reports/publish_credits.py), against planted weeks on a small warehouse built the way dbt and
the attribution asset build it: every publish must equal the warehouse view (EXCEPT ALL both
ways, row counts, columns); the patch must be taken when the journeys' build chain holds and
the view is the known one, and the view copied whole otherwise."""

from __future__ import annotations

import logging
import random
import shutil
import threading
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import reports.publish as publish
from assets.attribution.warehouse import build_data_driven
from reports.publish import publish_marts

TOUCH = "main.attribution_data_driven"
CHANNELS = ["email", "events", "paid_search", "social", "webinar"]


def _journey_rows(opp: str, rng: random.Random, status: str) -> list[tuple]:
    n = rng.randint(1, 6)
    won = status == "won"
    amount = None if rng.random() < 0.05 else round(rng.uniform(1e3, 9e4), 2)
    start = datetime(2026, 1, 1) + timedelta(days=rng.randint(0, 200))
    return [
        (
            opp,
            f"{opp}-t{i}-{rng.randint(0, 10**6)}",
            i + 1,
            n,
            start + timedelta(days=3 * i),
            rng.choice(CHANNELS),
            f"c{rng.randint(1, 4)}",
            rng.choice(["click", "open", "visit"]),
            start.date(),
            None if status == "open" else start.date() + timedelta(days=40),
            status,
            won,
            amount,
        )
        for i in range(n)
    ]


class Warehouse:
    """A warehouse with the journeys (a dbt incremental model, with its state row and changed
    ids), the attribution asset's effects table and view, and one more mart."""

    def __init__(self, path: Path, seed: int = 7) -> None:
        self.path, self.rng, self.builds = path, random.Random(seed), 0
        self.status = {
            f"O{i:04d}": self.rng.choice(["won", "lost", "lost", "open"]) for i in range(300)
        }
        with duckdb.connect(str(path)) as con:
            con.execute(
                "create schema intermediate; create schema marts; "
                "create table intermediate.int_opportunity_journeys (opportunity_id varchar, "
                "touchpoint_id varchar, touch_position integer, touch_count integer, "
                "occurred_at timestamp, channel varchar, campaign varchar, touch_type varchar, "
                "opportunity_created_date date, opportunity_close_date date, "
                "opportunity_status varchar, is_won boolean, amount_usd double); "
                "create table intermediate.incremental_state (model varchar, build_id varchar, "
                "previous_build_id varchar, previous_as_of_date date, "
                "changed_opportunities bigint); "
                "create table intermediate.incremental_changed (model varchar, "
                "opportunity_id varchar); "
                "create table marts.other as select range as id, 'x' as v from range(50)"
            )
            rows = [r for o, s in self.status.items() for r in _journey_rows(o, self.rng, s)]
            con.executemany(
                "insert into intermediate.int_opportunity_journeys values "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._record(con, None)
            build_data_driven(con)

    def _record(self, con: duckdb.DuckDBPyConnection, changed: list[str] | None) -> None:
        model = "intermediate.int_opportunity_journeys"
        previous = con.execute(
            "select build_id from intermediate.incremental_state where model = ?", [model]
        ).fetchone()
        self.builds += 1
        con.execute("delete from intermediate.incremental_state")
        con.execute("delete from intermediate.incremental_changed")
        con.execute(
            "insert into intermediate.incremental_state values (?, ?, ?, null, ?)",
            [
                model,
                f"build-{self.builds}",
                previous[0] if previous and changed is not None else None,
                None if changed is None else len(changed),
            ],
        )
        if changed:
            con.executemany(
                "insert into intermediate.incremental_changed values (?, ?)",
                [[model, o] for o in changed],
            )

    def week(self, n: int = 25, only_open: bool = False, touch_other: bool = False) -> list[str]:
        """An incremental build of the journeys: `n` opportunities recomputed (some with new
        touches, one dropped, one new), then the attribution step refits and redefines."""
        pool = sorted(o for o, s in self.status.items() if s == "open" or not only_open)
        changed = self.rng.sample(pool, n)
        new = f"N{self.builds:03d}"
        self.status[new] = "open" if only_open else "won"
        changed.append(new)
        with duckdb.connect(str(self.path)) as con:
            con.execute(
                "delete from intermediate.int_opportunity_journeys where opportunity_id in "
                "(select unnest(?::varchar[]))",
                [changed],
            )
            rows = [
                r
                for o in changed[1:]  # the first one lost all its touches
                for r in _journey_rows(o, self.rng, self.status[o])
            ]
            con.executemany(
                "insert into intermediate.int_opportunity_journeys values "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._record(con, changed)
            if touch_other:
                con.execute(f"update marts.other set v = 'w{self.builds}' where id < 3")
            build_data_driven(con)
        return changed


def mismatches(warehouse: Path, marts: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{warehouse}' as w (read_only)")
        con.execute(f"attach '{marts}' as p (read_only)")
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = 'w' and table_schema = 'marts'"
            ).fetchall()
        ]
        assert "attribution_data_driven" in names
        for name in names:
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


def recorded(marts: Path) -> tuple:
    with duckdb.connect(str(marts), read_only=True) as con:
        return con.execute(
            "select build_id, action, patched_by, rows_deleted, rows_inserted "
            "from publish_tables where table_name = ?",
            [TOUCH],
        ).fetchone()


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb")


def test_a_week_patches_the_credits_and_updates_the_markov_rows(wh, tmp_path):
    marts = tmp_path / "marts.duckdb"
    assert publish_marts(wh.path, marts).mode == "full"
    assert recorded(marts)[0] == "build-1"  # a fresh build records the journeys' build too
    for week in range(2):  # the chain carries on from a credits patch
        changed = wh.week()
        with duckdb.connect(str(marts), read_only=True) as con:
            out = con.execute(
                f"select count(*) from {TOUCH} where opportunity_id in "
                "(select unnest(?::varchar[]))",
                [changed],
            ).fetchone()[0]
        result = publish_marts(wh.path, marts)
        assert result.mode == "incremental"
        assert result.credits_patched == (TOUCH,) and TOUCH in result.patched
        assert TOUCH not in result.rewritten and TOUCH not in result.keyed
        assert mismatches(wh.path, marts) == {}, week
        with duckdb.connect(str(wh.path), read_only=True) as con:
            # rows of the recomputed deals out and in (two per touch: Markov and Shapley)
            inserted, markov_left = con.execute(
                "select count(*) filter (where opportunity_id in (select unnest(?::varchar[]))),"
                " count(*) filter (where opportunity_id not in (select unnest(?::varchar[])) "
                "and attribution_model = 'markov') from marts.attribution_data_driven",
                [changed, changed],
            ).fetchone()
        # the refit moved the removal effects: every other deal's Markov row was updated
        assert result.rows_updated == markov_left > 0
        build, action, by, deleted, ins = recorded(marts)
        assert (build, action, by, ins) == (f"build-{week + 2}", "patched", "key", inserted)
        assert deleted == out > 0  # the published rows of the recomputed deals
    # reruns without a build: the same contents, then nothing left to record
    again = publish_marts(wh.path, marts)
    assert TOUCH not in again.patched + again.rewritten
    assert publish_marts(wh.path, marts).mode == "unchanged"
    assert mismatches(wh.path, marts) == {}


def test_unchanged_effects_touch_only_the_recomputed_deals(wh, tmp_path):
    """Only open deals recomputed: the models are fitted on closed journeys, so the removal
    effects are the same and no Markov row of another deal is rewritten."""
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    effects = (
        "select channel, removal_effect from marts.attribution_channel_effects "
        "where attribution_model = 'markov' order by channel"
    )
    with duckdb.connect(str(wh.path), read_only=True) as con:
        before = con.execute(effects).fetchall()
    wh.week(only_open=True, touch_other=True)
    with duckdb.connect(str(wh.path), read_only=True) as con:
        assert con.execute(effects).fetchall() == before  # the planted premise
    result = publish_marts(wh.path, marts)
    assert result.credits_patched == (TOUCH,) and result.rows_updated == 0
    assert result.rows_inserted > 0
    assert mismatches(wh.path, marts) == {}


def test_a_broken_journeys_chain_copies_the_view_whole(wh, tmp_path):
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    wh.week()
    wh.week()  # two builds without a publish in between
    result = publish_marts(wh.path, marts)
    assert result.credits_patched == () and TOUCH in result.rewritten
    assert mismatches(wh.path, marts) == {}
    assert recorded(marts)[0] == "build-3"  # the chain resumes from here
    wh.week()
    assert publish_marts(wh.path, marts).credits_patched == (TOUCH,)
    assert mismatches(wh.path, marts) == {}


def test_a_redefined_view_is_copied_whole(wh, tmp_path):
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    wh.week()
    with duckdb.connect(str(wh.path)) as con:  # same columns, another formula
        sql = con.execute(
            "select sql from duckdb_views() where view_name = 'attribution_data_driven'"
        ).fetchone()[0]
        con.execute("drop view marts.attribution_data_driven")
        con.execute(sql.replace("(1.0 / ", "(2.0 / "))
    result = publish_marts(wh.path, marts)
    assert result.credits_patched == () and TOUCH in result.rewritten
    assert mismatches(wh.path, marts) == {}


def test_journeys_edited_outside_dbt_fail_the_counts_and_rewrite(wh, tmp_path, caplog):
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    changed = wh.week()
    with duckdb.connect(str(wh.path)) as con:  # a deal the build did not list loses a touch
        con.execute(
            "delete from intermediate.int_opportunity_journeys where touchpoint_id = (select "
            "min(touchpoint_id) from intermediate.int_opportunity_journeys "
            "where opportunity_id not in (select unnest(?::varchar[])))",
            [changed],
        )
    with caplog.at_level(logging.WARNING, logger="reports.publish"):
        result = publish_marts(wh.path, marts)
    assert result.credits_patched == () and TOUCH in result.rewritten
    assert "credits patch" in caplog.text
    assert mismatches(wh.path, marts) == {}


def test_a_reader_of_the_old_file_keeps_its_credits(wh, tmp_path):
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    content = f"select sum(hash(t)::hugeint), count(*) from {TOUCH} as t"
    reader = duckdb.connect(str(marts), read_only=True)
    try:
        before = reader.execute(content).fetchone()
        wh.week()
        assert publish_marts(wh.path, marts).credits_patched == (TOUCH,)
        assert reader.execute(content).fetchone() == before
    finally:
        reader.close()
    with duckdb.connect(str(marts), read_only=True) as fresh:
        assert fresh.execute(content).fetchone() != before
    assert mismatches(wh.path, marts) == {}


def test_the_copy_runs_beside_the_plan_and_its_failure_keeps_the_old_file(
    wh, tmp_path, monkeypatch
):
    """A dbt build since the last publish: the last published file is copied in a thread while
    the plan runs; a failing copy raises in the publish, and the old file stays whole."""
    marts = tmp_path / "marts.duckdb"
    publish_marts(wh.path, marts)
    wh.week()
    threads: list[str] = []
    copy = shutil.copyfile

    def spying_copy(src, dst):
        threads.append(threading.current_thread().name)
        return copy(src, dst)

    monkeypatch.setattr(publish.shutil, "copyfile", spying_copy)
    result = publish_marts(wh.path, marts)
    assert threads == ["publish-copy"] and result.step_seconds["copy_seconds"] > 0
    assert mismatches(wh.path, marts) == {}

    wh.week()
    before = marts.read_bytes()

    def failing_copy(src, dst):
        Path(dst).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(publish.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        publish_marts(wh.path, marts)
    assert marts.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".marts.duckdb.publish.json",
        "marts.duckdb",
        "warehouse.duckdb",
    ]
