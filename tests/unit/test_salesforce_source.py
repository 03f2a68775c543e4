"""The dlt source on a scripted client (no HTTP): restart after an expired query locator, first
load by append, cursor state only committed with a successful load. Real dlt, real DuckDB."""

import re
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from assets.salesforce.client import ClientStats, QueryLocatorExpiredError
from assets.salesforce.load import extract_salesforce, pipeline
from assets.salesforce.source import ExtractOptions
from sandbox.schema import OBJECTS

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def stamp(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def product(i: int, minute: int, deleted: bool = False) -> dict:
    return {
        "Id": f"01t{i:012d}",
        "Name": f"P{i}",
        "ProductCode": None,
        "Family": "Platform",
        "IsActive": True,
        "CreatedDate": stamp(0),
        "LastModifiedDate": stamp(minute),
        "SystemModstamp": stamp(minute),
        "IsDeleted": deleted,
    }


class ScriptedClient:
    """Answers like Salesforce (ORDER BY SystemModstamp, Id; WHERE SystemModstamp >= x)."""

    def __init__(self, rows: list[dict], expire_after_pages: int | None = None, on_expire=None):
        self.rows = rows
        self.expire_after_pages = expire_after_pages
        self.on_expire = on_expire  # called when the locator expires (e.g. to change a record)
        self.queries: list[str] = []
        self.stats = ClientStats()

    def describe(self, sobject: str) -> dict:
        return {"fields": [{"name": f.name, "type": f.type} for f in OBJECTS[sobject].fields]}

    def query_pages(self, soql: str, include_deleted: bool, batch_size: int):
        self.queries.append(soql)
        m = re.search(r"SystemModstamp >= (\S+)", soql)
        rows = sorted(self.rows, key=lambda r: (r["SystemModstamp"], r["Id"]))
        if m:
            since = m.group(1).replace("Z", "+0000")
            rows = [r for r in rows if r["SystemModstamp"] >= since]
        for n, start in enumerate(range(0, len(rows), batch_size), 1):
            if self.expire_after_pages is not None and n > self.expire_after_pages:
                self.expire_after_pages = None  # expire once
                if self.on_expire is not None:
                    self.on_expire(self.rows)
                raise QueryLocatorExpiredError("GET /query/x: query locator expired")
            yield rows[start : start + batch_size]


def table(home) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(
            "select id, system_modstamp, is_deleted from salesforce.product2 order by id"
        ).fetchall()
    finally:
        con.close()


OPTS = ExtractOptions(bulk_threshold=None, batch_size=4, cursor_overlap_s=0)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    return tmp_path


def test_expired_locator_restarts_from_cursor_without_duplicates(home):
    # 12 rows, six share one SystemModstamp straddling the page 2/3 boundary
    rows = [product(i, i if i < 4 else (10 if i < 10 else i + 10)) for i in range(12)]
    client = ScriptedClient(rows, expire_after_pages=2)
    result = extract_salesforce(["Product2"], client=client, options=OPTS)
    assert (
        len(client.queries) == 2
        and "SystemModstamp >= 2024-01-01T00:10:00.000Z" in (client.queries[1])
    )
    got = table(home)
    assert [r[0] for r in got] == [r["Id"] for r in rows]  # each Id exactly once
    assert result.objects["Product2"].rows_loaded == 12
    assert pipeline().default_schema.tables["product2"]["write_disposition"] == "append"


def test_restart_in_a_first_load_keeps_one_version_of_a_record_changed_meanwhile(home):
    """First load (append): a record read on page 1 and changed before the query restart is
    read again by the restarted query; the table still holds each Id once, the newest."""
    rows = [product(i, i) for i in range(12)]

    def change_first(rows):
        rows[0] = product(0, 500, deleted=True)  # now stamped above everything read

    client = ScriptedClient(rows, expire_after_pages=2, on_expire=change_first)
    extract_salesforce(["Product2"], client=client, options=OPTS)
    got = table(home)
    assert [r[0] for r in got] == [r["Id"] for r in rows]  # each Id once
    assert got[0][1] == T0 + timedelta(minutes=500) and got[0][2] is True  # the newest version
    assert pipeline().default_schema.tables["product2"]["write_disposition"] == "append"


def test_second_run_merges_changes_and_deletions(home):
    rows = [product(i, i) for i in range(10)]
    extract_salesforce(["Product2"], client=ScriptedClient(rows), options=OPTS)
    rows[3] = product(3, 100, deleted=True)
    rows.append(product(10, 101))
    client = ScriptedClient(rows)
    result = extract_salesforce(["Product2"], client=client, options=OPTS)
    assert "SystemModstamp >= 2024-01-01T00:09:00.000Z" in client.queries[0]
    # the boundary row is read again (>= cursor) but is already loaded unchanged: skipped
    assert result.objects["Product2"].rows_loaded == 2  # the 2 changes
    assert result.objects["Product2"].rows_unchanged == 1
    got = table(home)
    assert len(got) == 11 and len({r[0] for r in got}) == 11
    assert [r[0] for r in got if r[2]] == ["01t000000000003"]
    assert result.objects["Product2"].deleted_rows == 1
    assert pipeline().default_schema.tables["product2"]["write_disposition"] == "merge"


def test_failed_run_does_not_advance_the_cursor(home):
    rows = [product(i, i) for i in range(10)]
    extract_salesforce(["Product2"], client=ScriptedClient(rows), options=OPTS)
    rows = rows + [product(i, 50 + i) for i in range(10, 20)]

    def crash(sobject, page, n):
        if page == 2:
            raise RuntimeError("boom between pages")

    failing = ExtractOptions(bulk_threshold=None, batch_size=4, cursor_overlap_s=0, on_page=crash)
    with pytest.raises(Exception, match="boom between pages"):
        extract_salesforce(["Product2"], client=ScriptedClient(rows), options=failing)
    client = ScriptedClient(rows)
    extract_salesforce(["Product2"], client=client, options=OPTS)
    assert "SystemModstamp >= 2024-01-01T00:09:00.000Z" in client.queries[0]  # old cursor
    assert [r[0] for r in table(home)] == [r["Id"] for r in rows]
