"""Suites built from sandbox.schema, and the SQL engine's semantics on tiny tables."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from quality_checks import sql_engine, store
from quality_checks.fixtures import create_raw_tables
from quality_checks.render import expectations_markdown, samples_markdown
from quality_checks.rules import (
    DIMENSIONS,
    QualityConfig,
    all_raw_specs,
    picklists_from_describe,
    salesforce_specs,
    spec_for,
)
from quality_checks.validate import TableMissingError, validate_table
from sandbox.schema import OBJECTS, REFERENCE, snake

AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CFG = QualityConfig(as_of=AS_OF)


def test_every_raw_table_has_a_suite_with_hard_id_rule():
    specs = {s.label: s for s in all_raw_specs(CFG)}
    for obj in OBJECTS:
        spec = specs[f"salesforce.{snake(obj)}"]
        unique = [r for r in spec.rules if r.name.endswith("id.unique")]
        assert len(unique) == 1 and unique[0].hard
        assert spec.live_filter.startswith("NOT") == OBJECTS[obj].deletable
    assert {"marketing.ad_spend", "marketing.touchpoints"} <= set(specs)
    names = [r.name for s in specs.values() for r in s.rules]
    assert len(names) == len(set(names))


def test_references_become_hard_integrity_rules_except_polymorphic():
    for obj, sobj in OBJECTS.items():
        spec = spec_for(obj, CFG)
        fks = {r.column for r in spec.rules if r.dimension == "integrity"}
        want = {snake(f.name) for f in sobj.fields if f.type == REFERENCE and f.reference_to}
        assert fks == want, obj
        assert all(r.hard for r in spec.rules if r.dimension == "integrity")
    assert "who_id" not in {r.column for r in spec_for("Task", CFG).rules if r.hard}


def test_dimensions_cover_the_brief():
    opp = spec_for("Opportunity", CFG)
    dims = {r.dimension for r in opp.rules}
    assert dims == set(DIMENSIONS)
    stage = next(r for r in opp.rules if r.name == "opportunity.stage_name.in_set")
    assert "'Closed Won'" in stage.fail_sql
    assert any(r.soft for r in spec_for("Contact", CFG).rules)


def test_picklists_from_describe_override_schema():
    describe = {
        "Opportunity": {
            "fields": [
                {
                    "name": "StageName",
                    "type": "picklist",
                    "picklistValues": [
                        {"value": "Open", "active": True},
                        {"value": "Won", "active": True},
                        {"value": "Old", "active": False},
                    ],
                },
            ]
        }
    }
    pl = picklists_from_describe(describe)
    assert pl == {("Opportunity", "StageName"): ("Open", "Won")}
    cfg = QualityConfig(as_of=AS_OF, picklists=pl)
    stage = next(
        r for r in spec_for("Opportunity", cfg).rules if r.name.endswith("stage_name.in_set")
    )
    assert stage.gx_args["value_set"] == ["Open", "Won"]


def test_config_validates():
    with pytest.raises(ValueError, match="timezone"):
        QualityConfig(as_of=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="gate"):
        QualityConfig(as_of=AS_OF, gate=1.5)
    with pytest.raises(KeyError, match="no quality suite"):
        spec_for("Nope", CFG)


@pytest.fixture
def contacts_db(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    create_raw_tables(con, ["User", "Account", "Contact"])
    audit = "TIMESTAMPTZ '2025-12-30', TIMESTAMPTZ '2025-12-30', TIMESTAMPTZ '2025-12-31'"
    con.execute(
        "INSERT INTO salesforce.user (id, username, name, last_name, email, is_active, "
        f"created_date, last_modified_date, system_modstamp) VALUES ('U1','u','n','l','e',true,"
        f"{audit})"
    )
    con.execute(
        "INSERT INTO salesforce.account (id, name, industry, owner_id, currency_iso_code, "
        f"created_date, last_modified_date, system_modstamp, is_deleted) VALUES "
        f"('A1','a','Software','U1','USD',{audit},false)"
    )
    rows = [
        ("C1", "a@x.com", "2025-01-01", "A1", False),
        ("C2", " A@X.com", "2025-02-01", "A1", False),  # same person, later: soft duplicate
        ("C3", "b@x.com", "2025-01-01", "A404", False),  # orphan: hard, quarantined
        ("C4", "a@x.com", "2024-01-01", "A404", True),  # deleted: ignored entirely
        ("C5", None, "2025-01-01", "A1", False),  # missing e-mail
    ]
    for cid, email, created, acc, deleted in rows:
        con.execute(
            "INSERT INTO salesforce.contact (id, account_id, last_name, email, owner_id, "
            "created_date, last_modified_date, system_modstamp, is_deleted) VALUES "
            "(?, ?, 'x', ?, 'U1', CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ), "
            "TIMESTAMPTZ '2025-12-31', ?)",
            [cid, acc, email, created, created, deleted],
        )
    con.close()
    return path


def test_sql_engine_semantics_and_quarantine_replacement(contacts_db):
    spec = spec_for("Contact", CFG)
    r = validate_table(contacts_db, spec, CFG, run_id="r1", engine="sql")
    by = {x.name: x for x in r.rules}
    assert r.counts.rows == 4
    assert by["contact.email.duplicate_person"].failed == 1
    assert by["contact.email.duplicate_person"].checked == 3
    assert by["contact.account_id.references_account"].failed == 1
    assert by["contact.email.not_null"].failed == 1
    assert r.counts.failed_rows == 3 and r.score == 0.25
    assert r.counts.quarantined_rows == 1 and r.counts.hard_failed_downstream == 0
    samples = {(s["record_id"], s["rule"]) for s in r.samples}
    assert samples == {
        ("C2", "contact.email.duplicate_person"),
        ("C3", "contact.account_id.references_account"),
        ("C5", "contact.email.not_null"),
    }
    # fix the orphan at the source: the next run replaces the object's quarantine rows
    con = duckdb.connect(str(contacts_db))
    con.execute("UPDATE salesforce.contact SET account_id = 'A1' WHERE id = 'C3'")
    con.close()
    r2 = validate_table(contacts_db, spec, CFG, run_id="r2", engine="sql")
    assert r2.counts.quarantined_rows == 0
    con = duckdb.connect(str(contacts_db))
    try:
        assert con.execute("SELECT count(*) FROM quality.quarantine").fetchall()[0][0] == 0
        assert con.execute("SELECT count(DISTINCT run_id) FROM quality.results").fetchall() == [
            (2,)
        ]
    finally:
        con.close()


def test_without_quarantine_hard_rules_must_hold_on_every_row(contacts_db):
    r = validate_table(contacts_db, spec_for("Contact", CFG), CFG, engine="sql", quarantine=False)
    assert r.counts.hard_failed_downstream == 1
    assert not r.passed and "not quarantined" in r.why()


def test_missing_table_and_missing_parent(contacts_db, tmp_path):
    with pytest.raises(TableMissingError, match="materialize its raw asset"):
        validate_table(contacts_db, spec_for("Lead", CFG), CFG, engine="sql")
    # Contact references only Account/User (present); Opportunity's parent Campaign is absent
    con = duckdb.connect(str(contacts_db))
    create_raw_tables(con, ["Opportunity"])
    con.close()
    r = validate_table(contacts_db, spec_for("Opportunity", CFG), CFG, engine="sql")
    assert any("campaign" in s for s in r.skipped)
    assert r.counts.rows == 0 and r.score == 1.0


def test_stale_table_is_a_warn_finding_that_keeps_the_row_score(contacts_db):
    fresh_run = validate_table(
        contacts_db, spec_for("Contact", CFG), CFG, engine="sql", write=False
    )
    late = QualityConfig(as_of=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    r = validate_table(contacts_db, spec_for("Contact", late), late, engine="sql", write=False)
    fresh = next(x for x in r.rules if x.dimension == "freshness")
    # newest Contact row 2025-12-31; Contact's window is 35 days: stale at 2026-03-01
    assert (fresh.checked, fresh.failed) == (1, 1)
    assert r.findings and "stale" in r.findings[0] and "2025-12-31" in r.findings[0]
    # the rows are judged as before: same failing rows, same score, same hard-rule outcome
    assert r.counts == fresh_run.counts and r.score == fresh_run.score
    assert "freshness" not in r.dimension_scores
    assert r.passed == fresh_run.passed and r.why() == fresh_run.why()
    assert not any(x.dimension == "freshness" and x.failed for x in fresh_run.rules)


def test_freshness_windows_per_table_and_override():
    cfg = QualityConfig(as_of=AS_OF)
    assert cfg.freshness_window("Opportunity") == dt.timedelta(days=8)
    assert cfg.freshness_window("Account") == dt.timedelta(days=35)
    for slow in ("User", "UserRole", "Product2", "CurrencyType", "DatedConversionRate"):
        assert cfg.freshness_window(slow) is None
        assert not any(r.dimension == "freshness" for r in spec_for(slow, cfg).rules)
    opp_fresh = next(r for r in spec_for("Opportunity", cfg).rules if r.kind == "freshness")
    assert opp_fresh.gx_args["min_value"] == AS_OF - dt.timedelta(days=8)
    one = QualityConfig(as_of=AS_OF, freshness_max_age=dt.timedelta(days=2))
    assert one.freshness_window("Account") == dt.timedelta(days=2)
    assert one.freshness_window("User") is None


def test_markdown_lists_ids_and_escapes(contacts_db):
    r = validate_table(contacts_db, spec_for("Contact", CFG), CFG, engine="sql", write=False)
    md = samples_markdown(r)
    assert "`C3`" in md and "(hard, quarantined)" in md
    table = expectations_markdown(r)
    assert table.count("\n|") >= len(r.rules) + 1
    assert "| integrity | account_id |" in table


def test_connect_waits_for_lock_then_gives_up_with_the_error(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
            "print('ok', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(duckdb.IOException, match="lock"), store.connect(path, wait_s=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.connect(path, wait_s=0.5) as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]


def test_salesforce_specs_are_pure_python():
    # building suites must not import GX or Dagster (cheap to import anywhere)
    import subprocess
    import sys

    code = (
        "import sys, datetime as dt; from quality_checks.rules import salesforce_specs, "
        "QualityConfig; salesforce_specs(QualityConfig(as_of=dt.datetime.now(dt.UTC))); "
        "import quality_checks.validate; "
        "print(any(m.startswith(('great_expectations', 'dagster')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    assert len(salesforce_specs(CFG)) == len(OBJECTS)
    assert sql_engine.FAIL_TABLE.startswith("__")


def test_a_crashing_gx_run_fails_the_gate_but_still_reports(contacts_db, monkeypatch):
    from quality_checks import gx_engine

    def boom(*a, **k):
        raise RuntimeError("metric bundle exploded")

    monkeypatch.setattr(gx_engine, "run_suite", boom)
    r = validate_table(contacts_db, spec_for("Contact", CFG), CFG, engine="gx", write=False)
    assert r.errors == ["Great Expectations failed: RuntimeError: metric bundle exploded"]
    assert r.severity == "ERROR" and r.counts.failed_rows == 3  # SQL numbers still there
    assert all(x.engine == "sql" for x in r.rules)


def test_org_picklists_from_the_warehouse_replace_the_defaults(contacts_db):
    con = duckdb.connect(str(contacts_db))
    try:
        assert store.read_picklists(con) is None
        con.execute(
            "CREATE TABLE salesforce._picklist_values AS SELECT * FROM (VALUES "
            "('Contact', 'LeadSource', 'Web'), ('Contact', 'LeadSource', 'Trade Show')) "
            "AS t(object, field, value)"
        )
        pl = store.read_picklists(con)
    finally:
        con.close()
    assert pl == {("Contact", "LeadSource"): ("Trade Show", "Web")}
    cfg = QualityConfig(as_of=AS_OF, picklists=pl)
    rule = next(r for r in spec_for("Contact", cfg).rules if r.name.endswith("lead_source.in_set"))
    assert "'Trade Show'" in rule.fail_sql and "'Partner'" not in rule.fail_sql


def test_partition_keys_kept_for_expression_partitions_only():
    from quality_checks.partition_keys import kept_rules

    specs = {s.label: s for s in all_raw_specs(CFG)}
    kept = {s.label: [r.name for r in kept_rules(s)] for s in specs.values()}
    assert kept["salesforce.lead"] == ["lead.email.duplicate_person"]
    assert kept["salesforce.contact"] == ["contact.email.duplicate_person"]
    assert kept["marketing.ad_spend"] == ["ad_spend.date_channel_campaign.unique"]
    # a plain-column partition (touchpoint_id) or the row key itself (Id) is not copied
    assert kept["marketing.touchpoints"] == [] and kept["salesforce.opportunity"] == []
    assert sum(len(v) for v in kept.values()) == 3


def test_foreign_keys_restricted_to_candidate_values_give_the_same_rows():
    """The incremental form of a foreign key (parent Ids read only for the values among the
    evaluated rows) flags exactly the rows the full form flags, NULLs and deleted parents
    included."""
    from quality_checks.rules import references_fail_sql

    con = duckdb.connect()
    con.execute("CREATE SCHEMA p")
    con.execute(
        "CREATE TABLE p.parent AS SELECT * FROM (VALUES ('a', false), ('b', true), (NULL, false),"
        " ('c', NULL)) t(id, is_deleted)"
    )
    con.execute(
        "CREATE TABLE kids AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL), (4, 'zz'), "
        "(5, 'c')) t(k, fk)"
    )
    live = 'NOT coalesce("is_deleted", false)'
    rows = {}
    for values_from in (None, "kids"):
        cond = references_fail_sql("fk", ("p", "parent"), live, values_from)
        rows[values_from] = con.execute(f"SELECT k FROM kids WHERE {cond} ORDER BY k").fetchall()
    assert rows[None] == rows["kids"] == [(2,), (4,)]  # deleted parent, missing parent
