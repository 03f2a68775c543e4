"""The sandbox over real HTTPS with the real simple-salesforce client."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from sandbox.api import SandboxServer, client
from sandbox.schema import OBJECTS
from sandbox.store import synthetic_table

N_OPPS = 4500
PAGE = 1000


def _sf_datetime(v: datetime) -> str:
    v = v.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return {
        "Opportunity": synthetic_table("Opportunity", N_OPPS, seed=7),
        "Account": synthetic_table("Account", 120, seed=8),
        "User": synthetic_table("User", 12, seed=9),
    }


@pytest.fixture(scope="module")
def server(tables: dict[str, pa.Table]) -> Iterator[SandboxServer]:
    with SandboxServer(tables, page_size=PAGE) as srv:
        yield srv


@pytest.fixture(scope="module")
def sf(server: SandboxServer) -> Salesforce:
    return client(server.credentials)


def _token(server: SandboxServer, **overrides: str) -> requests.Response:
    c = server.credentials
    data = {
        "grant_type": "password",
        "client_id": c["SALESFORCE_CLIENT_ID"],
        "client_secret": c["SALESFORCE_CLIENT_SECRET"],
        "username": c["SALESFORCE_USERNAME"],
        "password": c["SALESFORCE_PASSWORD"] + c["SALESFORCE_SECURITY_TOKEN"],
    }
    data.update(overrides)
    session = requests.Session()
    session.trust_env = False
    return session.post(f"{server.url}/services/oauth2/token", data=data, verify=server.ca_file)


def test_credentials_are_the_contract_env_vars(server: SandboxServer) -> None:
    c = server.credentials
    assert set(c) == {
        "SALESFORCE_LOGIN_URL",
        "SALESFORCE_USERNAME",
        "SALESFORCE_PASSWORD",
        "SALESFORCE_SECURITY_TOKEN",
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_CA_FILE",
        "SALESFORCE_API_VERSION",
    }
    assert c["SALESFORCE_LOGIN_URL"].startswith("https://127.0.0.1:")
    assert Path(c["SALESFORCE_CA_FILE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_oauth_password_grant(server: SandboxServer) -> None:
    resp = _token(server)
    assert resp.status_code == 200
    body = resp.json()
    assert body["instance_url"] == server.url and body["token_type"] == "Bearer"
    assert {"access_token", "id", "issued_at", "signature"} <= set(body)


def test_oauth_client_credentials_grant(server: SandboxServer) -> None:
    resp = _token(server, grant_type="client_credentials", username="", password="")
    assert resp.status_code == 200 and resp.json()["access_token"]


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"password": "wrong"}, "invalid_grant"),
        # password without the security token appended
        ({"password": "__PASSWORD_ONLY__"}, "invalid_grant"),
        ({"username": "someone@else.com"}, "invalid_grant"),
        ({"client_id": "nope"}, "invalid_client_id"),
        ({"client_secret": "nope"}, "invalid_client"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
def test_oauth_failures(server: SandboxServer, override: dict[str, str], error: str) -> None:
    if override.get("password") == "__PASSWORD_ONLY__":
        override = {"password": server.credentials["SALESFORCE_PASSWORD"]}
    resp = _token(server, **override)
    assert resp.status_code == 400
    assert resp.json()["error"] == error
    if error == "invalid_grant":
        assert resp.json()["error_description"] == "authentication failure"


def test_data_endpoints_require_a_valid_token(server: SandboxServer) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = server.ca_file
    url = f"{server.url}/services/data/v62.0/sobjects/"
    for headers in ({}, {"Authorization": "Bearer 00Dforged!token"}):
        resp = session.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]
    bad = Salesforce(instance_url=server.url, session_id="forged", session=session)
    with pytest.raises(SalesforceExpiredSession):
        bad.query("SELECT Id FROM Opportunity")


def test_versions_and_describe_global(server: SandboxServer, sf: Salesforce) -> None:
    session = requests.Session()
    session.trust_env = False
    versions = session.get(f"{server.url}/services/data/", verify=server.ca_file).json()
    assert versions[-1]["version"] == "62.0"
    names = [o["name"] for o in sf.describe()["sobjects"]]
    assert names == ["Opportunity", "Account", "User"]


def test_describe_matches_schema(sf: Salesforce) -> None:
    d = sf.Opportunity.describe()
    assert d["name"] == "Opportunity"
    fields = {f["name"]: f for f in d["fields"]}
    schema = OBJECTS["Opportunity"]
    assert list(fields) == schema.field_names
    for spec in schema.fields:
        f = fields[spec.name]
        assert f["type"] == spec.type
        assert f["nillable"] == spec.nillable
        assert [p["value"] for p in f["picklistValues"]] == list(spec.picklist)
        assert all(p["active"] for p in f["picklistValues"])
        assert f["referenceTo"] == ([spec.reference_to] if spec.reference_to else [])
        assert f["custom"] == spec.name.endswith("__c")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nonexistent__c.describe()


def test_query_pagination_returns_every_row_once_with_typed_values(
    sf: Salesforce, server: SandboxServer, tables: dict[str, pa.Table]
) -> None:
    src = tables["Opportunity"]
    live = src.filter(pc.invert(src["IsDeleted"]))
    fields = ", ".join(OBJECTS["Opportunity"].field_names)
    before = server.stats
    first = sf.query(f"SELECT {fields} FROM Opportunity")
    assert first["totalSize"] == live.num_rows
    assert first["done"] is False and len(first["records"]) == PAGE
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/")
    records = list(sf.query_all_iter(f"SELECT {fields} FROM Opportunity"))
    pages = server.stats["requests"].get("query_more", 0) - before["requests"].get("query_more", 0)
    assert pages == -(-live.num_rows // PAGE) - 1  # every page after the first is a query_more
    ids = [r["Id"] for r in records]
    assert len(ids) == len(set(ids)) == live.num_rows
    expected = {row["Id"]: row for row in live.to_pylist()}
    for rec in records:
        row = expected[rec["Id"]]
        assert rec["attributes"] == {
            "type": "Opportunity",
            "url": f"/services/data/v62.0/sobjects/Opportunity/{row['Id']}",
        }
        assert rec["Amount"] == row["Amount"]
        assert rec["CloseDate"] == (row["CloseDate"].isoformat() if row["CloseDate"] else None)
        assert rec["SystemModstamp"] == _sf_datetime(row["SystemModstamp"])
        assert rec["IsWon"] is row["IsWon"]
        assert rec["Name"] == row["Name"]
        assert rec["IsDeleted"] is False


def test_query_all_includes_deleted_rows(sf: Salesforce, tables: dict[str, pa.Table]) -> None:
    src = tables["Opportunity"]
    got = sf.query_all("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True)["records"]
    assert len(got) == src.num_rows
    deleted = {r["Id"] for r in got if r["IsDeleted"]}
    assert deleted == set(src.filter(src["IsDeleted"])["Id"].to_pylist())
    assert deleted  # the fixture has soft-deleted rows


def test_incremental_filter_is_exact(sf: Salesforce, tables: dict[str, pa.Table]) -> None:
    src = tables["Opportunity"]
    stamps = sorted(src["SystemModstamp"].to_pylist())
    cut = stamps[len(stamps) // 2]
    literal = _sf_datetime(cut)
    got = sf.query_all(
        f"SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp > {literal} "
        "ORDER BY SystemModstamp",
        include_deleted=True,
    )["records"]
    expected = src.filter(
        pc.greater(src["SystemModstamp"], pa.scalar(cut, src["SystemModstamp"].type))
    )
    assert sorted(r["Id"] for r in got) == sorted(expected["Id"].to_pylist())
    assert [r["SystemModstamp"] for r in got] == sorted(r["SystemModstamp"] for r in got)
    assert all(r["SystemModstamp"] > literal for r in got)
    ge = sf.query_all(
        f"SELECT Id FROM Opportunity WHERE SystemModstamp >= {literal}", include_deleted=True
    )
    assert ge["totalSize"] == len(got) + stamps.count(cut)


def test_count_and_limit(sf: Salesforce, tables: dict[str, pa.Table]) -> None:
    src = tables["Opportunity"]
    live = src.filter(pc.invert(src["IsDeleted"])).num_rows
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == live
    limited = sf.query_all("SELECT Id FROM Opportunity ORDER BY Id LIMIT 1500")
    assert limited["totalSize"] == 1500
    assert [r["Id"] for r in limited["records"]] == sorted(r["Id"] for r in limited["records"])


@pytest.mark.parametrize(
    ("soql_text", "code"),
    [
        ("SELECT Id FROM Foo", "INVALID_TYPE"),
        ("SELECT Id, Bogus FROM Opportunity", "INVALID_FIELD"),
        ("SELECT FROM Opportunity", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE SystemModstamp > yesterday", "MALFORMED_QUERY"),
    ],
)
def test_query_errors_raise_simple_salesforce_exceptions(
    sf: Salesforce, soql_text: str, code: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql_text)
    assert info.value.status == 400
    assert info.value.content[0]["errorCode"] == code


def test_invalid_locator(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01gdoesnotexist-2000")
    assert info.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_batch_size_header_is_honoured(server: SandboxServer, sf: Salesforce) -> None:
    first = sf.query(
        "SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert len(first["records"]) == 200


def test_bulk2_download_returns_the_same_rows(
    sf: Salesforce, tables: dict[str, pa.Table], tmp_path: Path
) -> None:
    src = tables["Opportunity"]
    fields = ["Id", "Name", "Amount", "CloseDate", "IsWon", "SystemModstamp", "IsDeleted"]
    results = sf.bulk2.Opportunity.download(
        f"SELECT {', '.join(fields)} FROM Opportunity",
        path=str(tmp_path),
        max_records=2000,
        wait=0.05,
    )
    live = src.filter(pc.invert(src["IsDeleted"]))
    assert [r["number_of_records"] for r in results] == [2000, 2000, live.num_rows - 4000]
    rows = []
    for r in results:
        with open(r["file"], newline="", encoding="utf-8") as fh:
            rows.extend(csv.DictReader(fh))
    assert len(rows) == live.num_rows
    expected = {row["Id"]: row for row in live.select(fields).to_pylist()}
    for got in rows:
        want = expected[got["Id"]]
        assert got["Name"] == (want["Name"] or "")
        assert (float(got["Amount"]) if got["Amount"] else None) == want["Amount"]
        assert got["IsWon"] == ("true" if want["IsWon"] else "false")
        assert got["SystemModstamp"] == _sf_datetime(want["SystemModstamp"]).replace("+0000", "Z")


def test_bulk2_query_all_and_job_lifecycle(
    server: SandboxServer, sf: Salesforce, tables: dict[str, pa.Table]
) -> None:
    pages = list(
        sf.bulk2.Opportunity.query_all("SELECT Id FROM Opportunity", max_records=3000, wait=0.05)
    )
    ids = [line.strip('"') for page in pages for line in page.splitlines()[1:]]
    assert len(ids) == len(set(ids)) == tables["Opportunity"].num_rows
    # raw lifecycle: UploadComplete -> InProgress -> JobComplete, then delete
    session = sf.session
    base = f"{server.url}/services/data/v62.0/jobs/query"
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    job = session.post(
        base,
        headers=headers,
        data=json.dumps({"operation": "query", "query": "SELECT Id FROM Account"}),
    )
    assert job.status_code == 200 and job.json()["state"] == "UploadComplete"
    job_id = job.json()["id"]
    early = session.get(f"{base}/{job_id}/results", headers=headers)
    assert early.status_code == 400
    states = [session.get(f"{base}/{job_id}", headers=headers).json()["state"] for _ in range(2)]
    assert states == ["InProgress", "JobComplete"]
    info = session.get(f"{base}/{job_id}", headers=headers).json()
    assert (
        info["numberRecordsProcessed"]
        == tables["Account"].filter(pc.invert(tables["Account"]["IsDeleted"])).num_rows
    )
    assert session.delete(f"{base}/{job_id}", headers=headers).status_code == 204
    assert session.get(f"{base}/{job_id}", headers=headers).status_code == 404
    bad = session.post(
        base,
        headers=headers,
        data=json.dumps({"operation": "query", "query": "SELECT Nope FROM Account"}),
    )
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_client_that_does_not_trust_the_ca_fails_tls(server: SandboxServer) -> None:
    session = requests.Session()
    session.trust_env = False  # system trust store only: must reject the throwaway CA
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{server.url}/services/data/")
    # ... and the server keeps serving trusted clients afterwards
    assert session.get(f"{server.url}/services/data/", verify=server.ca_file).status_code == 200


def test_set_table_replaces_data_between_runs(tables: dict[str, pa.Table]) -> None:
    with SandboxServer({"Account": tables["Account"]}) as srv:
        sf = client(srv.credentials)
        before = sf.query("SELECT COUNT() FROM Account")["totalSize"]
        srv.set_table("Account", tables["Account"].slice(0, 10))
        after = sf.query_all("SELECT Id FROM Account", include_deleted=True)["totalSize"]
        assert before > 10 and after == 10
        srv.set_org({"User": tables["User"]})
        assert [o["name"] for o in sf.describe()["sobjects"]] == ["User"]


def test_from_dir_serves_parquet_and_csv(tmp_path: Path, tables: dict[str, pa.Table]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(tables["Account"], tmp_path / "Account.parquet")
    (tmp_path / "User.csv").write_text(
        "Id,Username,Name,LastName,Email,IsActive,CreatedDate,LastModifiedDate,SystemModstamp,"
        "Nickname__c\n005A,a@x.com,Ann A,A,a@x.com,true,2024-01-01T00:00:00.000Z,"
        "2024-01-02T00:00:00.000+0000,2024-01-02T00:00:00.000+0000,annie\n"
    )
    (tmp_path / "truth.json").write_text("{}")
    with SandboxServer.from_dir(tmp_path) as srv:
        sf = client(srv.credentials)
        users = sf.query("SELECT Id, IsActive, SystemModstamp, Nickname__c FROM User")["records"]
        assert users[0]["IsActive"] is True
        assert users[0]["SystemModstamp"] == "2024-01-02T00:00:00.000+0000"
        assert users[0]["Nickname__c"] == "annie"
        types = {f["name"]: f["type"] for f in sf.User.describe()["fields"]}
        assert types["Nickname__c"] == "string" and types["IsActive"] == "boolean"
        assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0


def test_last_page_can_be_fetched_again(sf: Salesforce) -> None:
    """A client that lost the final answer (timeout, reset) may ask for the same locator again."""
    first = sf.query("SELECT Id FROM Account")  # 120 rows minus deleted: a single page
    assert first["done"] is True
    page = sf.query("SELECT Id FROM Opportunity ORDER BY Id")
    while not page["done"]:
        locator = page["nextRecordsUrl"]
        page = sf.query_more(locator, identifier_is_url=True)
    again = sf.query_more(locator, identifier_is_url=True)
    assert again["records"] == page["records"] and again["done"] is True


def test_limits_versions_abort_and_unknown_paths(server: SandboxServer, sf: Salesforce) -> None:
    session = sf.session
    headers = {"Authorization": f"Bearer {sf.session_id}"}
    limits = session.get(f"{server.url}/services/data/v62.0/limits", headers=headers).json()
    assert 0 < limits["DailyApiRequests"]["Remaining"] < limits["DailyApiRequests"]["Max"]
    too_new = session.get(f"{server.url}/services/data/v99.0/sobjects/", headers=headers)
    assert too_new.status_code == 404 and too_new.json()[0]["errorCode"] == "NOT_FOUND"
    older = session.get(f"{server.url}/services/data/v58.0/sobjects/", headers=headers)
    assert older.status_code == 200
    assert session.get(f"{server.url}/services/apexrest/x", headers=headers).status_code == 404
    base = f"{server.url}/services/data/v62.0/jobs/query"
    job = session.post(
        base, headers=headers, json={"operation": "query", "query": "SELECT Id FROM User"}
    ).json()
    aborted = session.patch(f"{base}/{job['id']}", headers=headers, json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    assert session.get(f"{base}/{job['id']}", headers=headers).json()["state"] == "Aborted"
    listed = session.get(base, headers=headers).json()
    assert job["id"] in [j["id"] for j in listed["records"]]
    wrong_op = session.post(base, headers=headers, json={"operation": "insert", "query": "x"})
    assert wrong_op.status_code == 400
