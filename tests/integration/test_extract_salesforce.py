"""Salesforce extraction end to end: the HTTPS emulator, the real client, dlt, a temp DuckDB.

Every check compares the warehouse with what the emulator serves (an independent source: the
generated org), row for row and value for value.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.salesforce import SalesforceResource, salesforce_assets
from assets.salesforce.client import RequestLimitExceededError, SalesforceAuthError
from assets.salesforce.fields import MissingFieldError
from assets.salesforce.load import extract_salesforce
from assets.salesforce.source import ExtractOptions
from sandbox.api import SandboxServer
from sandbox.faults import FaultPlan
from sandbox.org import SCALES, advance, generate
from sandbox.schema import OBJECT_NAMES, snake

TINY = {k: max(2, v // 10) for k, v in SCALES["small"].items()}
PAGE = 250  # small pages so Task / OpportunityHistory / Lead span several
MULTI_PAGE = ["Lead", "Task"]
REST = ExtractOptions(bulk_threshold=None, batch_size=PAGE)


@pytest.fixture(scope="module")
def orgs():
    org = generate(TINY, seed=11)
    return org, advance(org, 20)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    monkeypatch.setenv("SALESOPS_SF_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("SALESOPS_SF_BULK_THRESHOLD", "off")
    monkeypatch.setenv("SALESOPS_SF_BATCH_SIZE", str(PAGE))
    monkeypatch.delenv("SALESOPS_SF_EXTRA_FIELDS", raising=False)
    return tmp_path


@pytest.fixture
def sandbox(orgs, home, monkeypatch):
    with SandboxServer(orgs[0], page_size=PAGE) as srv:
        for k, v in srv.credentials.items():
            monkeypatch.setenv(k, v)
        yield srv


# -- helpers ------------------------------------------------------------------------------------
def warehouse(home, sobject: str) -> pa.Table:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(
            f"select * exclude (_dlt_load_id, _dlt_id) from salesforce.{snake(sobject)} order by id"
        ).to_arrow_table()
    finally:
        con.close()


def assert_matches(home, served: pa.Table, sobject: str) -> None:
    """The raw table holds exactly the served records (deleted ones included), value for value."""
    got = warehouse(home, sobject)
    exp = served.rename_columns([snake(c) for c in served.column_names])
    exp = exp.sort_by("id")
    assert got.column_names == exp.column_names, sobject
    assert got.num_rows == exp.num_rows, f"{sobject}: {got.num_rows} rows, org has {exp.num_rows}"
    for name in exp.column_names:
        a, b = got[name].combine_chunks(), exp[name].combine_chunks()
        if a.type != b.type:
            b = b.cast(a.type)
        if not a.equals(b):
            diff = pc.invert(pc.fill_null(pc.equal(a, b), False))
            i = pc.index(diff, True).as_py()
            pytest.fail(f"{sobject}.{name} differs at id {exp['id'][i]}: {a[i]} != {b[i]}")


def assert_all_match(home, srv, objects=OBJECT_NAMES) -> None:
    for o in objects:
        assert_matches(home, srv.table(o), o)


def materialize(**kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        salesforce_assets,
        resources={"salesforce": SalesforceResource()},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def metadata_by_object(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    out = {}
    for m in result.asset_materializations_for_node("salesforce_extract"):
        out[m.asset_key.path[-1]] = {k: v.value for k, v in m.metadata.items()}
    return out


# -- full then incremental, through the Dagster assets ------------------------------------------
def test_full_then_incremental_through_dagster(sandbox, orgs, home):
    org, later = orgs
    result = materialize()
    assert result.success
    assert_all_match(home, sandbox)
    meta = metadata_by_object(result)
    assert set(meta) == {snake(o) for o in OBJECT_NAMES}
    for o in OBJECT_NAMES:
        served = org.tables[o]
        m = meta[snake(o)]
        assert m["rows_loaded"] == m["total_rows"] == served.num_rows
        deleted = (
            pc.sum(served["IsDeleted"]).as_py() or 0 if "IsDeleted" in served.schema.names else 0
        )
        assert m["deleted_rows"] == deleted
        assert m["pages"] == max(1, -(-served.num_rows // PAGE))

    sandbox.set_org(later)
    result = materialize()
    assert result.success
    assert_all_match(home, sandbox)
    meta = metadata_by_object(result)
    changed_total = 0
    for o in OBJECT_NAMES:
        before, after = org.tables[o], later.tables[o]
        cursor = pc.max(before["SystemModstamp"]).as_py()
        changed = pc.sum(pc.greater(after["SystemModstamp"], cursor)).as_py() or 0
        changed_total += changed
        # incremental: only the window since the cursor (minus the overlap) is read again
        m = meta[snake(o)]
        assert changed <= m["rows_loaded"] < after.num_rows or after.num_rows <= PAGE
        assert m["total_rows"] == after.num_rows
        if "IsDeleted" in after.schema.names:
            assert m["deleted_rows"] == pc.sum(after["IsDeleted"]).as_py()
    assert changed_total > 0, "advance() changed nothing: the incremental test proves nothing"
    deleted_now = pc.sum(later.tables["Task"]["IsDeleted"]).as_py()
    assert deleted_now > pc.sum(org.tables["Task"]["IsDeleted"]).as_py()


def test_subset_materializes_only_the_selected_objects(sandbox, home):
    result = materialize(selection=[dg.AssetKey(["salesforce", "opportunity"])])
    assert result.success
    assert set(metadata_by_object(result)) == {"opportunity"}
    assert_matches(home, sandbox.table("Opportunity"), "Opportunity")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    tables = {r[0] for r in con.sql("select table_name from duckdb_tables()").fetchall()}
    con.close()
    assert "opportunity" in tables and "task" not in tables


# -- resilience ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(expire_session_after_pages=2),  # 401 INVALID_SESSION_ID mid-pagination
        FaultPlan(status_503_next=2, status_503_every=4),
        FaultPlan(reset_next=1, reset_every=3),  # connection dropped without an answer
        FaultPlan(slow_every=3, slow_seconds=0.6),  # slower than the read timeout below
    ],
    ids=["session-expired", "503", "connection-reset", "slow-timeout"],
)
def test_faults_are_survived_without_loss_or_duplicates(sandbox, home, monkeypatch, plan):
    monkeypatch.setenv("SALESOPS_SF_READ_TIMEOUT", "0.3")
    sandbox.faults = plan
    result = extract_salesforce(MULTI_PAGE, options=REST)
    injected = sum(sandbox.stats["faults"].values())
    assert injected >= 1, sandbox.stats
    assert_all_match(home, sandbox, MULTI_PAGE)
    if plan.expire_session_after_pages:
        assert result.relogins >= 1
    else:
        assert result.retries >= 1


def test_request_limit_stops_clearly_then_rerun_converges(sandbox, home):
    sandbox.faults = FaultPlan(request_limit_after=3)
    with pytest.raises(RequestLimitExceededError, match="REQUEST_LIMIT_EXCEEDED") as exc:
        extract_salesforce(MULTI_PAGE, options=REST)
    assert "rerun" in str(exc.value)
    assert sandbox.stats["status"].get("403") == 1  # stopped at once: no retry storm
    sandbox.faults = None
    extract_salesforce(MULTI_PAGE, options=REST)
    assert_all_match(home, sandbox, MULTI_PAGE)


def crash_at(sobject: str, page: int) -> ExtractOptions:
    def hook(name: str, n: int, rows: int) -> None:
        if name == sobject and n == page:
            raise RuntimeError(f"simulated crash after {name} page {n}")

    return ExtractOptions(bulk_threshold=None, batch_size=PAGE, on_page=hook)


def test_crash_between_pages_then_rerun_converges(sandbox, orgs, home):
    # first (full) run dies after Task page 3 (Lead already fully read in the same run)
    with pytest.raises(Exception, match="simulated crash after Task page 3"):
        extract_salesforce(MULTI_PAGE, options=crash_at("Task", 3))
    extract_salesforce(MULTI_PAGE, options=REST)
    assert_all_match(home, sandbox, MULTI_PAGE)
    # incremental run dies after its first Task page: nothing of it is half-applied
    sandbox.set_org(orgs[1])
    with pytest.raises(Exception, match="simulated crash after Task page 1"):
        extract_salesforce(MULTI_PAGE, options=crash_at("Task", 1))
    for o in MULTI_PAGE:
        assert_matches(home, orgs[0].tables[o], o)
    extract_salesforce(MULTI_PAGE, options=REST)
    assert_all_match(home, sandbox, MULTI_PAGE)


def test_record_updated_between_pages_is_picked_up_next_run(sandbox, home):
    sandbox.faults = FaultPlan(update_after_page=1, update_object="Task")
    extract_salesforce(["Task"], options=REST)
    updated = sandbox.stats["records_updated"]
    assert len(updated) == 1
    sandbox.faults = None
    extract_salesforce(["Task"], options=REST)
    assert_matches(home, sandbox.table("Task"), "Task")
    rid = updated[0]["id"]
    got = warehouse(home, "Task").filter(pc.equal(pc.field("id"), rid))
    assert got["system_modstamp"][0].as_py().isoformat() == updated[0]["system_modstamp"]


# -- bulk ---------------------------------------------------------------------------------------
def test_bulk_and_rest_produce_identical_tables(sandbox, home, tmp_path_factory, monkeypatch):
    objects = ["Opportunity", "Task", "User", "CurrencyType"]
    extract_salesforce(objects, options=REST)
    rest = {o: warehouse(home, o) for o in objects}
    other = tmp_path_factory.mktemp("bulk")
    monkeypatch.setenv("SALESOPS_HOME", str(other))
    result = extract_salesforce(
        objects, options=ExtractOptions(bulk_threshold=1, bulk_max_records=300)
    )
    assert {r.mode for r in result.objects.values()} == {"bulk"}
    assert result.objects["Task"].pages > 1  # several result pages by locator
    for o in objects:
        bulk = warehouse(other, o)
        assert bulk.schema == rest[o].schema, o
        assert bulk.equals(rest[o]), o
    assert sandbox.stats["requests"].get("bulk_create", 0) >= len(objects)


# -- schema drift -------------------------------------------------------------------------------
def test_new_custom_field_in_config_becomes_a_column(sandbox, home, monkeypatch):
    extract_salesforce(["Opportunity"], options=REST)
    opp = sandbox.table("Opportunity")
    tiers = pa.array([["Gold", "Silver", None][i % 3] for i in range(opp.num_rows)], pa.string())
    sandbox.set_table("Opportunity", opp.append_column("Tier__c", tiers))
    # env var: the column appears on the next incremental run, no migration
    monkeypatch.setenv("SALESOPS_SF_EXTRA_FIELDS", "Opportunity.Tier__c")
    result = extract_salesforce(["Opportunity"], options=REST)
    assert "tier_c" in result.objects["Opportunity"].columns
    assert "tier_c" in warehouse(home, "Opportunity").column_names
    # Dagster run config: the same field; a full refresh backfills it on every row
    monkeypatch.delenv("SALESOPS_SF_EXTRA_FIELDS")
    config = {"extra_fields": ["Opportunity.Tier__c"], "full_refresh": True}
    run = materialize(
        selection=[dg.AssetKey(["salesforce", "opportunity"])],
        run_config={"ops": {"salesforce_extract": {"config": config}}},
    )
    assert run.success
    assert metadata_by_object(run)["opportunity"]["columns"] == len(opp.column_names) + 1
    assert_matches(home, sandbox.table("Opportunity"), "Opportunity")


def test_missing_required_field_is_a_clear_error(sandbox, home):
    opp = sandbox.table("Opportunity")
    sandbox.set_table("Opportunity", opp.drop_columns(["StageName"]))
    with pytest.raises(MissingFieldError, match=r"Opportunity lacks required field\(s\) StageName"):
        extract_salesforce(["Opportunity"], options=REST)


def test_missing_credentials_name_the_env_vars(home, monkeypatch):
    for k in ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_CLIENT_ID",
              "SALESFORCE_CLIENT_SECRET"):  # fmt: skip
        monkeypatch.delenv(k, raising=False)
    result = materialize(raise_on_error=False)
    assert not result.success
    text = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "SALESFORCE_USERNAME" in text and "SALESFORCE_CLIENT_SECRET" in text


# -- secrets ------------------------------------------------------------------------------------
SECRETS = {
    "password": "PwZ9-very-distinct-4471",
    "security_token": "TokQ7-very-distinct-9926",
    "client_id": "CidK3-very-distinct-1184",
    "client_secret": "CsecM5-very-distinct-3090",
}


def test_no_secret_in_logs_metadata_or_errors(orgs, home, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with SandboxServer(orgs[0], page_size=PAGE, **SECRETS) as srv:
        for k, v in srv.credentials.items():
            monkeypatch.setenv(k, v)
        srv.faults = FaultPlan(expire_session_after_pages=1, status_503_next=1)
        ok = materialize(selection=[dg.AssetKey(["salesforce", "lead"])])
        assert ok.success
        tokens = list(getattr(srv, "_tokens", {}))  # access tokens issued after the re-login
        texts += [str(e) for e in ok.all_events]
        texts += [str(m.metadata) for m in ok.asset_materializations_for_node("salesforce_extract")]
        srv.faults = FaultPlan(request_limit_after=1)
        limited = materialize(raise_on_error=False)
        assert not limited.success
        texts += [str(e) for e in limited.all_events]
        texts += [
            e.event_specific_data.error.to_string() for e in limited.get_step_failure_events()
        ]
        srv.faults = None
        monkeypatch.setenv("SALESFORCE_PASSWORD", SECRETS["password"] + "-wrong")
        with pytest.raises(SalesforceAuthError) as exc:
            extract_salesforce(["Lead"], options=REST)
        texts.append(str(exc.value))
        assert "SALESFORCE_PASSWORD" in str(exc.value)
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    # nor in anything dlt keeps on disk (state, schemas, traces, load packages) or the warehouse
    texts += [f.read_bytes().decode("latin-1") for f in home.rglob("*") if f.is_file()]
    blob = "\n".join(texts)
    assert "REQUEST_LIMIT_EXCEEDED" in blob and "logging in again" in blob  # we did capture
    for name, secret in {**SECRETS, **{f"token{i}": t for i, t in enumerate(tokens)}}.items():
        assert secret not in blob, f"{name} leaked"
    assert tokens, "no access token captured: the token check proves nothing"


# -- first load, unchanged objects, no COUNT on incremental runs --------------------------------
def raw_table(home, sobject: str) -> pa.Table:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(
            f"select * exclude (_dlt_load_id) from salesforce.{snake(sobject)} order by id"
        ).to_arrow_table()
    finally:
        con.close()


def load_ids(home, sobject: str) -> set[str]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.sql(f"select distinct _dlt_load_id from salesforce.{snake(sobject)}").fetchall()
        return {r[0] for r in rows}
    finally:
        con.close()


def test_first_load_append_gives_the_same_tables_as_merge(
    sandbox, home, tmp_path_factory, monkeypatch
):
    """The fast path (plain append into an absent table) and merge on Id give identical raw
    tables: the source sends each Id once."""
    import assets.salesforce.load as load
    from assets.salesforce.load import pipeline

    objects = ["Opportunity", "OpportunityHistory", "Task"]
    extract_salesforce(objects, options=REST)
    appended = {o: raw_table(home, o) for o in objects}
    assert pipeline().default_schema.tables["task"]["write_disposition"] == "append"
    other = tmp_path_factory.mktemp("merged")
    monkeypatch.setenv("SALESOPS_HOME", str(other))
    monkeypatch.setattr(
        load, "_inspect_tables", lambda conn, plans: (frozenset(), frozenset(p.name for p in plans))
    )
    extract_salesforce(objects, options=REST)
    assert pipeline().default_schema.tables["task"]["write_disposition"] == "merge"
    for o in objects:
        merged = raw_table(other, o)
        assert merged.num_rows == sandbox.table(o).num_rows
        assert merged.equals(appended[o]), o
        assert_matches(other, sandbox.table(o), o)


SKIP_SET = ["User", "Product2", "Campaign", "Contact", "Opportunity", "Lead"]


def test_unchanged_objects_are_skipped_and_keep_their_cursor(sandbox, orgs, home):
    """An incremental run re-reads the overlap window; rows already loaded unchanged are
    dropped, so an object without changes gets no load job (its rows keep their load id) and
    its cursor stays; the warehouse still equals the org (= a from-scratch load of it)."""
    from assets.salesforce.load import pipeline

    org, later = orgs
    first = extract_salesforce(SKIP_SET, options=REST)
    before = {o: load_ids(home, o) for o in SKIP_SET}
    sandbox.set_org(later)
    second = extract_salesforce(SKIP_SET, options=REST)
    assert_all_match(home, sandbox, SKIP_SET)
    state = pipeline().state["sources"]["salesforce"]["resources"]
    unchanged = [
        o
        for o in SKIP_SET
        if org.tables[o].equals(later.tables[o])
        and pc.max(org.tables[o]["SystemModstamp"]).as_py() is not None
    ]
    changed = [o for o in SKIP_SET if o not in unchanged]
    assert unchanged and changed, (unchanged, changed)
    for o in unchanged:
        r = second.objects[o]
        assert r.rows_loaded == 0, o
        assert r.rows_unchanged >= 1, o  # the overlap window was read again, then dropped
        assert load_ids(home, o) == before[o], o  # no load job touched the table
        assert state[snake(o)]["cursor"] == first.objects[o].cursor, o
    for o in changed:
        assert second.objects[o].rows_loaded >= 1, o
        assert load_ids(home, o) - before[o], o  # written by the new load
    # a third run with nothing changed anywhere loads no row at all
    third = extract_salesforce(SKIP_SET, options=REST)
    assert sum(r.rows_loaded for r in third.objects.values()) == 0
    assert_all_match(home, sandbox, SKIP_SET)


def test_incremental_run_picks_bulk_from_the_first_page_without_count(
    sandbox, orgs, home, monkeypatch
):
    from assets.salesforce.client import SalesforceClient

    org, later = orgs
    extract_salesforce(MULTI_PAGE, options=REST)
    sandbox.set_org(later)
    counts: list[str] = []
    real_count = SalesforceClient.count
    monkeypatch.setattr(
        SalesforceClient,
        "count",
        lambda self, soql, d: counts.append(soql) or real_count(self, soql, d),
    )

    def window(o: str) -> int:  # rows the incremental query returns (cursor - 300 s overlap)
        stamps = later.tables[o]["SystemModstamp"]
        since = pc.max(org.tables[o]["SystemModstamp"]).as_py() - timedelta(seconds=300)
        return pc.sum(pc.greater_equal(stamps, pa.scalar(since, stamps.type))).as_py() or 0

    big, small = sorted(MULTI_PAGE, key=window, reverse=True)
    assert window(big) > window(small) > 10
    options = ExtractOptions(bulk_threshold=window(big), batch_size=PAGE, bulk_max_records=300)
    result = extract_salesforce(MULTI_PAGE, options=options)
    assert counts == []  # no COUNT() round trip on an incremental run
    assert result.objects[big].mode == "bulk" and result.objects[small].mode == "rest"
    assert result.objects[small].rows_loaded >= 1  # the probed first page was kept
    assert_all_match(home, sandbox, MULTI_PAGE)
