"""The data-quality gate on generated orgs: scores vs planted defects, blocking, history, report.

Expected scores are computed here from the simulator's truth (injected defect Ids) and the table
sizes, not from the gate's own output.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_checks.checks import (
    AS_OF_TAG,
    CHECK_NAME,
    GATES_STEP,
    QUALITY_REPORT_KEY,
    build_quality_check,
    build_quality_checks,
    quality_report,
)
from quality_checks.rules import QualityConfig, salesforce_specs, spec_for
from quality_checks.validate import validate_table, validate_tables
from reports.quality_report import write_report
from sandbox.org import generate, load_into_duckdb
from sandbox.schema import OBJECTS, snake

END = dt.date(2026, 6, 30)
GX_TABLES = ("Opportunity", "Account", "Contact", "Lead", "User")  # GX engine; rest SQL engine


def _expected_failing_ids(org, obj: str) -> set[str]:
    """Rows that must fail a rule: every injected defect Id; a duplicate counts when an earlier
    record with the same e-mail is still present (its source may have lost its e-mail to another
    injected defect)."""
    out: set[str] = set()
    for d in org.truth["defects"]:
        if d["object"] != obj or not d["ids"]:
            continue
        if d["kind"] == "duplicate":
            df = org.tables[obj].select(["Id", "Email", "CreatedDate"]).to_pandas()
            df["key"] = df["Email"].str.strip().str.lower()
            df = df.sort_values(["CreatedDate", "Id"])
            later = df[df["key"].notna() & df["key"].duplicated(keep="first")]
            out |= set(d["ids"]) & set(later["Id"])
        else:
            out |= set(d["ids"])
    return out


def _live_rows(org, obj: str) -> int:
    t = org.tables[obj]
    if "IsDeleted" in t.column_names:
        return int(sum(1 for v in t["IsDeleted"].to_pylist() if not v))
    return t.num_rows


@pytest.fixture(scope="module")
def default_org(tmp_path_factory):
    org = generate("small", seed=11, end=END)
    path = tmp_path_factory.mktemp("dq_default") / "warehouse.duckdb"
    load_into_duckdb(org, path)
    return org, path


@pytest.fixture(scope="module")
def default_results(default_org):
    org, path = default_org
    cfg = QualityConfig(as_of=org.as_of)
    gx_specs = [spec_for(o, cfg) for o in GX_TABLES]
    sql_specs = [s for s in salesforce_specs(cfg) if s.object not in GX_TABLES]
    res = validate_tables(path, gx_specs, cfg, run_id="run-1", engine="gx")
    res += validate_tables(path, sql_specs, cfg, run_id="run-1", engine="sql")
    return {r.object: r for r in res}


def test_default_defects_pass_and_scores_match_injected_rates(default_org, default_results):
    org, _ = default_org
    assert set(default_results) == set(OBJECTS)
    defect_objects = {d["object"] for d in org.truth["defects"] if d["ids"]}
    assert {"Opportunity", "Account", "Contact", "Lead"} <= defect_objects
    for obj, r in default_results.items():
        assert not r.errors, (obj, r.errors)
        rows = _live_rows(org, obj)
        expected_failing = _expected_failing_ids(org, obj)
        expected_score = 1 - len(expected_failing) / rows
        assert r.counts.rows == rows, obj
        assert r.counts.failed_rows == len(expected_failing), obj
        assert r.score == pytest.approx(expected_score, abs=1e-12), obj
        assert r.passed, (obj, r.why())
    # ~1 % of the defect tables' rows are bad: they pass, with findings (WARN)
    for obj in ("Opportunity", "Account", "Contact", "Lead"):
        assert 0.985 < default_results[obj].score < 0.995
        assert default_results[obj].severity == "WARN"


def test_gx_engine_agrees_with_planted_counts_per_expectation(default_org, default_results):
    org, _ = default_org
    opp = {r.name: r for r in default_results["Opportunity"].rules}
    counts = {
        f"{d['field']}.{d['kind']}": len(d["ids"])
        for d in org.truth["defects"]
        if d["object"] == "Opportunity"
    }
    assert all(r.engine == "gx" for r in opp.values())
    assert opp["opportunity.type.in_set"].failed == counts["Type.invalid_picklist"]
    assert opp["opportunity.amount.non_negative"].failed == counts["Amount.negative_amount"]
    assert opp["opportunity.account_id.not_null"].failed == counts["AccountId.missing_required"]
    assert opp["opportunity.account_id.references_account"].failed == counts["AccountId.orphan_key"]
    assert opp["opportunity.owner_id.references_user"].failed == counts["OwnerId.orphan_key"]
    rows = _live_rows(org, "Opportunity")
    assert opp["opportunity.account_id.not_null"].checked == rows
    # a foreign key rule checks the non-null references only
    assert opp["opportunity.account_id.references_account"].checked == (
        rows - counts["AccountId.missing_required"]
    )


def test_quarantine_holds_exactly_the_hard_rule_failures(default_org, default_results):
    org, path = default_org
    orphans: dict[str, set[str]] = {}
    for d in org.truth["defects"]:
        if d["kind"] == "orphan_key":
            orphans.setdefault(d["object"], set()).update(d["ids"])
    con = duckdb.connect(str(path))
    try:
        got: dict[str, set[str]] = {}
        for obj, rid in con.execute("SELECT object, record_id FROM quality.quarantine").fetchall():
            got.setdefault(obj, set()).add(rid)
        reasons = con.execute(
            "SELECT reason FROM quality.quarantine WHERE object = 'Opportunity' LIMIT 1"
        ).fetchall()
    finally:
        con.close()
    assert got == orphans
    assert "not found in" in reasons[0][0]
    for obj, ids in orphans.items():
        r = default_results[obj]
        assert r.counts.quarantined_rows == len(ids)
        assert r.counts.hard_failed_downstream == 0  # the 100 % hard rule on downstream rows


def test_failing_sample_names_injected_ids(default_org, default_results):
    org, _ = default_org
    for obj in ("Opportunity", "Contact", "Lead", "Account"):
        injected = _expected_failing_ids(org, obj)
        sample_ids = {s["record_id"] for s in default_results[obj].samples}
        assert sample_ids, obj
        assert sample_ids <= injected, (obj, sample_ids - injected)


def test_results_grow_by_one_row_per_expectation_per_run(default_org, default_results):
    org, path = default_org
    cfg = QualityConfig(as_of=org.as_of)
    spec = spec_for("Account", cfg)

    def count() -> int:
        con = duckdb.connect(str(path))
        try:
            return con.execute(
                "SELECT count(*) FROM quality.results WHERE \"table\" = 'salesforce.account'"
            ).fetchall()[0][0]
        finally:
            con.close()

    before = count()
    r = validate_table(path, spec, cfg, run_id="run-2", engine="sql")
    assert count() == before + len(r.rules) == before + len(spec.rules)
    r = validate_table(path, spec, cfg, run_id="run-3", engine="sql")
    assert count() == before + 2 * len(spec.rules)
    con = duckdb.connect(str(path))
    try:
        runs = con.execute(
            "SELECT run_id, count(*) FROM quality.results WHERE \"table\" = 'salesforce.account' "
            "GROUP BY run_id ORDER BY run_id"
        ).fetchall()
        # quarantine is replaced, not appended, per run
        q = con.execute(
            "SELECT count(*) FROM quality.quarantine_ids WHERE object = 'Contact'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert runs == [(f"run-{i}", len(spec.rules)) for i in (1, 2, 3)]
    assert q == default_results["Contact"].counts.quarantined_rows


def test_html_report_is_self_contained(default_org, default_results, tmp_path):
    org, path = default_org
    out = write_report(path, tmp_path / "reports")
    latest = tmp_path / "reports" / "data_quality" / "latest.html"
    assert out.exists() and latest.exists() and out.parent == latest.parent
    html = latest.read_text()
    assert not re.search(
        r"(?:https?:)?//[\w.-]+\.\w", html.replace("http://www.w3.org/2000/svg", "")
    )
    assert "<link" not in html and "<script" not in html.lower()
    assert "<svg" in html and "<style>" in html
    for obj in OBJECTS:
        assert f"salesforce.{snake(obj)}" in html
    some_orphan = next(d["ids"][0] for d in org.truth["defects"] if d["kind"] == "orphan_key")
    assert some_orphan in html
    assert "% pass" in html and "Salesforce Id" in html


# ------------------------------------------------------------------------ gate in a real run


def _materialize_gate(tmp_path: Path, monkeypatch, org, warehouse: Path | None = None, extra=()):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SALESOPS_HOME", str(home))
    if warehouse is None:
        load_into_duckdb(org, home / "warehouse.duckdb")
    else:
        shutil.copy(warehouse, home / "warehouse.duckdb")
    marker = home / "downstream_ran"

    @dg.asset(key=["salesforce", "opportunity"], group_name="salesforce")
    def raw_opportunity() -> dg.MaterializeResult:
        # stand-in for the extraction asset: the table is already loaded
        con = duckdb.connect(str(home / "warehouse.duckdb"))
        try:
            n = con.execute("SELECT count(*) FROM salesforce.opportunity").fetchall()[0][0]
        finally:
            con.close()
        return dg.MaterializeResult(metadata={"rows": n})

    @dg.asset(key=["marts", "opportunities"], deps=[raw_opportunity.key])
    def downstream() -> None:
        marker.write_text("ran")

    cfg = QualityConfig(as_of=org.as_of)
    check = build_quality_check(spec_for("Opportunity", cfg))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_opportunity, downstream, check, *extra],
        instance=instance,
        tags={AS_OF_TAG: org.as_of.isoformat()},
        raise_on_error=False,
    )
    return org, result, instance, marker, home


def test_gate_blocks_downstream_over_two_percent(tmp_path, monkeypatch):
    org = generate("small", seed=5, end=END, defect_rate=0.03)
    org, result, instance, marker, home = _materialize_gate(tmp_path, monkeypatch, org)
    evals = result.get_asset_check_evaluations()
    assert len(evals) == 1
    ev = evals[0]
    assert ev.check_name == CHECK_NAME and not ev.passed
    assert ev.severity == dg.AssetCheckSeverity.ERROR
    score = ev.metadata["score"].value
    injected = _expected_failing_ids(org, "Opportunity")
    rows = org.tables["Opportunity"].num_rows
    assert score == pytest.approx(1 - len(injected) / rows, abs=1e-9)
    assert score < 0.98
    # the downstream asset did not run
    mats = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["salesforce", "opportunity"]) in mats
    assert dg.AssetKey(["marts", "opportunities"]) not in mats
    assert not marker.exists()
    # the sample names injected bad Ids, the expectations table is there
    sample_md = ev.metadata["failing_rows_sample"].value
    ids_in_sample = set(re.findall(r"`(006\w+)`", sample_md))
    assert ids_in_sample and ids_in_sample <= injected
    assert "| dimension | column |" in ev.metadata["expectations"].value
    for dim in ("completeness", "validity", "integrity", "uniqueness"):
        assert isinstance(ev.metadata[f"score_{dim}"].value, float)
    # one log line says the run is gated
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    gated = [m for m in logs if "QUALITY GATE BLOCKED salesforce.opportunity" in m]
    assert len(gated) == 1 and "score" in gated[0]
    # the report was written for the run
    assert (home / "reports" / "data_quality" / "latest.html").exists()


def test_gate_passes_downstream_at_default_rate(tmp_path, monkeypatch, default_org):
    import reports.quality_report as qr

    renders = []
    real_write = qr.write_report

    def counting(*args, **kwargs):
        renders.append(kwargs.get("run_id"))
        return real_write(*args, **kwargs)

    monkeypatch.setattr(qr, "write_report", counting)
    org, path = default_org
    org, result, _, marker, home = _materialize_gate(
        tmp_path, monkeypatch, org, warehouse=path, extra=[quality_report]
    )
    # the passing check does not render; the report asset renders once, after the check
    assert renders == [None]
    ev = result.get_asset_check_evaluations()[0]
    assert ev.severity == dg.AssetCheckSeverity.WARN  # passes the gate, with findings
    assert ev.metadata["score"].value >= 0.98
    assert ev.metadata["quarantined_rows"].value == sum(
        len(d["ids"])
        for d in org.truth["defects"]
        if d["object"] == "Opportunity" and d["kind"] == "orphan_key"
    )
    assert result.success
    assert marker.read_text() == "ran"
    # the report asset materialized and wrote the HTML
    mats = {e.asset_key for e in result.get_asset_materialization_events()}
    assert QUALITY_REPORT_KEY in mats
    assert (home / "reports" / "data_quality" / "latest.html").exists()


def _raw_stand_in(table: str):
    """Stand-in for the extraction asset of salesforce.<table> (the table is already loaded)."""

    @dg.asset(key=["salesforce", table], group_name="salesforce")
    def raw() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"table": table})

    return raw


def test_one_step_gates_every_table_and_a_failure_blocks_the_step(tmp_path, monkeypatch):
    """The gates of several tables run in one step: each table keeps its own blocking check
    and result (scores from the planted truth); one table below the gate fails the step, so
    nothing downstream of the step runs, and the report is rendered once for the run."""
    import reports.quality_report as qr

    renders = []
    real_write = qr.write_report

    def counting(*args, **kwargs):
        renders.append(kwargs.get("run_id"))
        return real_write(*args, **kwargs)

    monkeypatch.setattr(qr, "write_report", counting)
    org = generate("small", seed=5, end=END, defect_rate=0.03)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SALESOPS_HOME", str(home))
    load_into_duckdb(org, home / "warehouse.duckdb")
    ran = []
    raws = [_raw_stand_in(t) for t in ("opportunity", "user")]

    @dg.asset(key=["marts", "users"], deps=[raws[1].key])
    def users_mart() -> None:
        ran.append("users")

    @dg.asset(key=["marts", "opportunities"], deps=[raws[0].key])
    def opportunities_mart() -> None:
        ran.append("opportunities")

    cfg = QualityConfig(as_of=org.as_of)
    gates = build_quality_checks([spec_for("Opportunity", cfg), spec_for("User", cfg)])
    assert len(gates) == 1 and len(gates[0].check_keys) == 2
    assert all(s.blocking for s in gates[0].check_specs)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*raws, users_mart, opportunities_mart, *gates],
        instance=instance,
        tags={AS_OF_TAG: org.as_of.isoformat()},
        raise_on_error=False,
    )
    evals = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert set(evals) == {"opportunity", "user"}
    assert {e.check_name for e in evals.values()} == {CHECK_NAME}
    opp, user = evals["opportunity"], evals["user"]
    assert not opp.passed and opp.severity == dg.AssetCheckSeverity.ERROR
    rows = org.tables["Opportunity"].num_rows
    injected = _expected_failing_ids(org, "Opportunity")
    assert opp.metadata["score"].value == pytest.approx(1 - len(injected) / rows, abs=1e-9)
    assert user.passed and user.metadata["score"].value == 1.0
    assert user.metadata["rows"].value == _live_rows(org, "User")
    # one step evaluated both tables; it failed, so nothing downstream of it ran
    steps = {e.step_key for e in instance.all_logs(result.run_id) if e.step_key}
    assert GATES_STEP in steps
    assert not any(k.endswith("_data_quality_gate") and k != GATES_STEP for k in steps)
    failed = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failed] == [GATES_STEP]
    assert ran == [] and not result.success
    # the run is blocked: the report was rendered once, and both results point at it
    assert renders == [result.run_id]
    assert opp.metadata["report"].value == user.metadata["report"].value
    assert Path(opp.metadata["report"].value).exists()
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        scored = con.execute(
            'SELECT "table", severity FROM quality.table_scores WHERE run_id = ? ORDER BY 1',
            [result.run_id],
        ).fetchall()
    finally:
        con.close()
    assert scored == [("salesforce.opportunity", "ERROR"), ("salesforce.user", "OK")]


def test_one_step_runs_the_selected_tables_and_reports_a_missing_one(
    tmp_path, monkeypatch, default_org
):
    """Selecting one table runs only its gate (the step is subsettable); a table the step
    cannot validate (not loaded) gets no result, the others do, and the step fails saying
    what to fix."""
    org, path = default_org
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SALESOPS_HOME", str(home))
    shutil.copy(path, home / "warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("DROP TABLE salesforce.product2")
    con.close()
    cfg = QualityConfig(as_of=org.as_of)
    raws = [_raw_stand_in(t) for t in ("user", "product2", "account")]
    gates = build_quality_checks([spec_for(o, cfg) for o in ("User", "Product2", "Account")])
    instance = dg.DagsterInstance.ephemeral()
    tags = {AS_OF_TAG: org.as_of.isoformat()}
    only_user = dg.materialize(
        [*raws, *gates],
        instance=instance,
        tags=tags,
        selection=dg.AssetSelection.assets(raws[0].key),
    )
    assert [e.asset_key.path[-1] for e in only_user.get_asset_check_evaluations()] == ["user"]
    both = dg.materialize(
        [*raws, *gates],
        instance=instance,
        tags=tags,
        selection=dg.AssetSelection.assets(raws[1].key, raws[2].key),
        raise_on_error=False,
    )
    evals = both.get_asset_check_evaluations()
    assert [e.asset_key.path[-1] for e in evals] == ["account"]
    assert evals[0].passed or evals[0].severity == dg.AssetCheckSeverity.WARN
    failure = next(e for e in both.all_events if e.is_step_failure)
    text = str(failure.event_specific_data.error)
    assert "salesforce.product2" in text and "materialize its raw asset" in text


def test_checks_load_into_definitions_for_every_raw_table():
    # what `from quality_checks import quality_checks, quality_assets` returns
    quality_checks, quality_assets = build_quality_checks(), [quality_report]
    # one step (op) holds a check per raw table: every Salesforce object + the 2 marketing tables
    assert len(quality_checks) == 1
    keys = [k for c in quality_checks for k in c.check_keys]
    assert len(keys) == len(set(keys)) == len(OBJECTS) + 2
    assert {k.name for k in keys} == {CHECK_NAME}
    raw = [dg.AssetSpec(k.asset_key) for k in keys]
    defs = dg.Definitions(assets=[*raw, *quality_assets], asset_checks=quality_checks)
    graph = defs.resolve_asset_graph()
    check_keys = graph.asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey(["salesforce", "opportunity"]), CHECK_NAME) in check_keys
    assert dg.AssetCheckKey(dg.AssetKey(["marketing", "touchpoints"]), CHECK_NAME) in check_keys
    assert all(spec.blocking for c in quality_checks for spec in c.check_specs)


def test_cli_validates_and_exits_by_the_gate(default_org, tmp_path, capsys):
    from quality_checks.__main__ import main

    org, path = default_org
    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(path, wh)
    args = [
        "--warehouse",
        str(wh),
        "--engine",
        "sql",
        "--as-of",
        org.as_of.isoformat(),
        "--reports",
        str(tmp_path / "reports"),
        "--tables",
        "Opportunity",
        "Lead",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "salesforce.opportunity" in out and "salesforce.lead" in out
    assert re.search(r"overall 9[89]\.\d\d% over 2 tables", out)
    assert (tmp_path / "reports" / "data_quality" / "latest.html").exists()
    con = duckdb.connect(str(wh))
    con.execute(
        "UPDATE salesforce.lead SET status = 'Bogus' WHERE id IN "
        "(SELECT id FROM salesforce.lead ORDER BY id LIMIT 200)"
    )
    con.close()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "ERROR salesforce.lead" in out and "< gate 98%" in out
