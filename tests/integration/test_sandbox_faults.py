"""Every planned fault fires exactly as planned, and a retrying client still gets every row."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from sandbox.api import SandboxServer, client
from sandbox.faults import FaultPlan, PageEvent
from sandbox.store import synthetic_table

N = 2500
PAGE = 500
PAGES = N // PAGE  # the fixture below has no deleted rows, so exactly 5 pages


@pytest.fixture(scope="module")
def opps() -> pa.Table:
    return synthetic_table("Opportunity", N, seed=11, deleted_share=0.0)


@pytest.fixture()
def server(opps: pa.Table) -> Iterator[SandboxServer]:
    with SandboxServer(
        {"Opportunity": opps, "Account": synthetic_table("Account", 30)}, page_size=PAGE
    ) as srv:
        yield srv


def _robust_fetch(server: SandboxServer, soql: str) -> tuple[list[dict], dict[str, int]]:
    """A client doing what the extractor must: retry transient errors, re-login on 401."""
    sf = client(server.credentials)
    seen = {"relogins": 0, "retries": 0}
    records: list[dict] = []
    next_url: str | None = None
    while True:
        for _attempt in range(10):
            try:
                if next_url is None:
                    page = sf.query(soql)
                else:
                    page = sf.query_more(next_url, identifier_is_url=True)
                break
            except SalesforceExpiredSession:
                sf = client(server.credentials)
                seen["relogins"] += 1
            except (SalesforceGeneralError, requests.ConnectionError):
                seen["retries"] += 1
        else:
            raise AssertionError("gave up after 10 attempts")
        records.extend(page["records"])
        if page["done"]:
            return records, seen
        next_url = page["nextRecordsUrl"]


def test_no_faults_by_default(server: SandboxServer) -> None:
    records, seen = _robust_fetch(server, "SELECT Id FROM Opportunity")
    assert len(records) == N and seen == {"relogins": 0, "retries": 0}
    assert server.stats["faults"] == {}


def test_session_expires_mid_pagination_and_locator_survives_relogin(
    server: SandboxServer,
) -> None:
    server.faults = FaultPlan(expire_session_after_pages=2)
    records, seen = _robust_fetch(server, "SELECT Id FROM Opportunity")
    assert len({r["Id"] for r in records}) == len(records) == N
    assert seen["relogins"] == 1
    stats = server.stats
    assert stats["faults"] == {"session_expired": 1}
    assert stats["status"]["401"] == 1
    assert stats["logins"] == 2


def test_old_token_is_rejected_after_expiry(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(expire_session_after_pages=1)
    first = sf.query("SELECT Id FROM Opportunity")
    with pytest.raises(SalesforceExpiredSession):
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    with pytest.raises(SalesforceExpiredSession):
        sf.describe()


def test_503_every_nth_page_request(server: SandboxServer) -> None:
    server.faults = FaultPlan(status_503_every=2)
    records, seen = _robust_fetch(server, "SELECT Id FROM Opportunity")
    assert len(records) == N
    # requests: 1 ok, 2 503, 3 ok, 4 503, ... -> PAGES successes need PAGES - 1 failures
    assert seen["retries"] == PAGES - 1
    assert server.stats["faults"] == {"status_503": PAGES - 1}
    assert server.stats["status"]["503"] == PAGES - 1


def test_503_next_k_requests(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(status_503_next=2)
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as info:
            sf.query("SELECT Id FROM Opportunity")
        assert info.value.status == 503
    assert sf.query("SELECT Id FROM Opportunity")["totalSize"] == N
    assert server.stats["faults"] == {"status_503": 2}


def test_connection_reset(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(reset_next=1, reset_every=4)
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT Id FROM Opportunity")
    records, seen = _robust_fetch(server, "SELECT Id FROM Opportunity")
    assert len(records) == N
    # counted requests: 1 reset (above), then 2 ok, 3 ok, 4 reset, 5 ok, 6 ok, 7 ok, 8 reset ...
    assert seen["retries"] == 1
    assert server.stats["faults"] == {"reset": 2}


def test_slow_responses(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(slow_every=2, slow_seconds=1.0)
    started = time.perf_counter()
    first = sf.query("SELECT Id FROM Opportunity")  # request 1: fast
    fast = time.perf_counter() - started
    started = time.perf_counter()
    sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)  # request 2: slow
    slow = time.perf_counter() - started
    # the delay is a lower bound; only request 2 was slowed (a busy CI machine can take 0.5 s
    # for a plain request, so the fast one is compared with the slow one, not with a constant)
    assert slow >= 1.0 and fast < slow
    assert server.stats["faults"] == {"slow": 1}


def test_request_limit_exceeded(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(request_limit_after=2)
    first = sf.query("SELECT Id FROM Opportunity")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    for _ in range(2):
        with pytest.raises(SalesforceRefusedRequest) as info:
            sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
        assert info.value.status == 403
        assert info.value.content == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
    assert server.stats["faults"] == {"request_limit": 2}


def test_scope_all_counts_describe_and_pages_scope_does_not(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(status_503_next=1)  # scope="pages": describe is not counted
    assert sf.Opportunity.describe()["name"] == "Opportunity"
    server.faults = FaultPlan(status_503_next=1, scope="all")
    with pytest.raises(SalesforceGeneralError):
        sf.Opportunity.describe()
    assert server.stats["faults"] == {"status_503": 1}


def test_record_updated_between_pages_is_caught_by_next_incremental_run(
    server: SandboxServer, opps: pa.Table
) -> None:
    server.faults = FaultPlan(update_after_page=2, update_changes={"Amount": 4242.0})
    soql = "SELECT Id, Amount, SystemModstamp FROM Opportunity"
    first_run, _ = _robust_fetch(server, soql)
    assert len(first_run) == N
    updated = server.stats["records_updated"]
    assert len(updated) == 1 and server.stats["faults"] == {"record_updated": 1}
    rid = updated[0]["id"]
    assert rid == first_run[0]["Id"]  # the first record: already sent on page 1
    served = next(r for r in first_run if r["Id"] == rid)
    original = opps.filter(pc.equal(opps["Id"], rid)).to_pylist()[0]
    assert served["Amount"] == original["Amount"] != 4242.0  # the run saw the old version
    # a consistent extractor keeps the max SystemModstamp it saw as its cursor
    cursor = max(r["SystemModstamp"] for r in first_run)
    server.faults = None
    second_run, _ = _robust_fetch(server, f"{soql} WHERE SystemModstamp > {cursor}")
    assert [r["Id"] for r in second_run] == [rid]
    assert second_run[0]["Amount"] == 4242.0 and second_run[0]["SystemModstamp"] > cursor


def test_on_page_hook_sees_every_page(server: SandboxServer) -> None:
    events: list[PageEvent] = []
    server.faults = FaultPlan(on_page=events.append)
    records, _ = _robust_fetch(server, "SELECT Id FROM Opportunity")
    assert [e.page_number for e in events] == list(range(1, PAGES + 1))
    assert [e.query_page for e in events] == list(range(1, PAGES + 1))
    assert {e.first_record_id for e in events} == {records[0]["Id"]}


def test_bulk_results_pages_are_faulted_too(server: SandboxServer, tmp_path) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(status_503_next=1)
    with pytest.raises(SalesforceGeneralError):
        sf.bulk2.Opportunity.download("SELECT Id FROM Opportunity", path=str(tmp_path), wait=0.02)
    results = sf.bulk2.Opportunity.download(
        "SELECT Id FROM Opportunity", path=str(tmp_path), wait=0.02
    )
    assert sum(r["number_of_records"] for r in results) == N
    assert server.stats["faults"] == {"status_503": 1}


def test_fault_counts_accumulate_across_plans(server: SandboxServer) -> None:
    sf = client(server.credentials)
    server.faults = FaultPlan(status_503_next=1)
    with pytest.raises(SalesforceGeneralError):
        sf.query("SELECT Id FROM Opportunity")
    server.faults = FaultPlan(request_limit_after=0)
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM Opportunity")
    assert server.stats["faults"] == {"status_503": 1, "request_limit": 1}
    server.reset_stats()
    assert server.stats["faults"] == {}


def test_invalid_plans_are_rejected() -> None:
    with pytest.raises(ValueError, match="scope"):
        FaultPlan(scope="everything")
    with pytest.raises(ValueError, match="status_503_every"):
        FaultPlan(status_503_every=0)


def test_direct_session_ttl_expiry(opps: pa.Table) -> None:
    with SandboxServer({"Opportunity": opps}, session_ttl=0.2) as srv:
        sf: Salesforce = client(srv.credentials)
        assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == N
        time.sleep(0.3)
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT COUNT() FROM Opportunity")
