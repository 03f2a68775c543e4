"""Sandbox data store: typing, describe, record updates, JSON / CSV wire encoding."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sandbox.schema import OBJECTS
from sandbox.store import (
    OrgStore,
    coerce_table,
    csv_records,
    json_records,
    read_table_file,
    synthetic_table,
)


def _sf_datetime(v: datetime, z: str = "+0000") -> str:
    v = v.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}{z}"


def _expected_json(row: dict, obj: str) -> dict:
    """What Salesforce sends for one record, built independently of the encoder."""
    out: dict = {
        "attributes": {"type": obj, "url": f"/services/data/v62.0/sobjects/{obj}/{row['Id']}"}
    }
    for k, v in row.items():
        if isinstance(v, datetime):
            v = _sf_datetime(v)
        elif isinstance(v, date):
            v = v.isoformat()
        out[k] = v
    return out


def test_synthetic_table_follows_the_schema_contract() -> None:
    t = synthetic_table("Opportunity", 50, seed=3)
    assert t.column_names == OBJECTS["Opportunity"].field_names
    assert t.schema.field("SystemModstamp").type == pa.timestamp("ms", tz="UTC")
    assert t.schema.field("CloseDate").type == pa.date32()
    assert t.schema.field("Amount").type == pa.float64()
    assert synthetic_table("Opportunity", 50, seed=3).equals(t)  # deterministic


def test_json_records_match_salesforce_values_exactly() -> None:
    t = synthetic_table("Opportunity", 300, seed=1)
    body = b"[" + json_records(t, "Opportunity", t.column_names, "62.0") + b"]"
    got = json.loads(body)
    expected = [_expected_json(r, "Opportunity") for r in t.to_pylist()]
    assert got == expected
    # escaping really happened (quotes, backslash, newline, tab, non-ASCII) and survived
    assert any(r["Name"] == 'Acme "Quoted" \\ back\nslash é\t✓' for r in got)
    # currency stays a JSON float even when integral (Salesforce sends 100.0, never 100)
    assert all(isinstance(r["Amount"], float) for r in got if r["Amount"] is not None)
    assert any(r["Amount"] is not None and r["Amount"].is_integer() for r in got)
    assert any(r["LeadSource"] is None for r in got)  # nulls are sent as null


def test_json_records_control_characters_and_hidden_id() -> None:
    t = pa.table({"Name": ["a\x01b", None, "plain"], "__sf_id": ["001A", "001B", "001C"]})
    got = json.loads(b"[" + json_records(t, "Account", ["Name"], "62.0") + b"]")
    assert [r["Name"] for r in got] == ["a\x01b", None, "plain"]
    assert got[1]["attributes"]["url"] == "/services/data/v62.0/sobjects/Account/001B"
    assert "__sf_id" not in got[0]


def test_csv_records_follow_bulk_conventions() -> None:
    t = synthetic_table("Opportunity", 40, seed=2)
    fields = ["Id", "Amount", "CloseDate", "IsWon", "LeadSource", "SystemModstamp"]
    text = csv_records(t, fields, ",", "\n", header=True).decode()
    assert text.splitlines()[0] == '"Id","Amount","CloseDate","IsWon","LeadSource","SystemModstamp"'
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 40
    for got, src in zip(rows, t.select(fields).to_pylist(), strict=True):
        assert got["Id"] == src["Id"]
        assert got["CloseDate"] == (src["CloseDate"].isoformat() if src["CloseDate"] else "")
        assert got["IsWon"] == str(src["IsWon"]).lower()
        assert got["LeadSource"] == (src["LeadSource"] or "")
        assert got["SystemModstamp"] == _sf_datetime(src["SystemModstamp"], "Z")
        assert (float(got["Amount"]) if got["Amount"] else None) == src["Amount"]
    crlf = csv_records(t.slice(0, 2), ["Id"], "|", "\r\n", header=True)
    assert crlf.count(b"\r\n") == 3


def test_coerce_table_casts_csv_strings_to_contract_types() -> None:
    raw = pa.table(
        {
            "Id": ["006A", "006B"],
            "Amount": ["10.5", ""],
            "CloseDate": ["2024-01-31", ""],
            "IsWon": ["true", "false"],
            "SystemModstamp": ["2024-05-01T12:34:56.000+0000", "2024-05-01T12:34:56.789Z"],
            "Extra__c": ["x", "y"],
        }
    )
    t = coerce_table("Opportunity", raw)
    assert t.schema.field("Amount").type == pa.float64()
    assert t["Amount"].to_pylist() == [10.5, None]
    assert t["CloseDate"].to_pylist() == [date(2024, 1, 31), None]
    assert t["IsWon"].to_pylist() == [True, False]
    assert t["SystemModstamp"].to_pylist() == [
        datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC),
    ]
    assert t.schema.field("Extra__c").type == pa.string()


def test_coerce_table_reports_bad_values_with_object_and_field() -> None:
    with pytest.raises(ValueError, match=r"Opportunity\.IsWon"):
        coerce_table("Opportunity", pa.table({"IsWon": ["maybe"]}))


def test_read_table_file_csv_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "Lead.csv").write_text(
        "Id,LastName,IsConverted,MQL_Date__c,Score__c\n00QA,Doe,false,2024-02-01,7\n"
        '00QB,"Smith, Jr",true,,\n'
    )
    lead = read_table_file(tmp_path / "Lead.csv", "Lead")
    assert lead["LastName"].to_pylist() == ["Doe", "Smith, Jr"]
    assert lead["IsConverted"].to_pylist() == [False, True]
    assert lead["MQL_Date__c"].to_pylist() == [date(2024, 2, 1), None]
    assert lead["Score__c"].to_pylist() == ["7", None]  # unknown column: kept as text
    pq.write_table(synthetic_table("Account", 5), tmp_path / "Account.parquet")
    assert read_table_file(tmp_path / "Account.parquet", "Account").num_rows == 5


def test_describe_reports_schema_types_and_extra_columns() -> None:
    t = synthetic_table("Opportunity", 3).append_column("Region__c", pa.array(["NA"] * 3))
    store = OrgStore({"Opportunity": t, "Widget__c": pa.table({"Id": ["a"], "Size": [1.5]})})
    d = store.describe("Opportunity", "62.0")
    fields = {f["name"]: f for f in d["fields"]}
    stage = fields["StageName"]
    assert stage["type"] == "picklist" and stage["nillable"] is False
    assert [p["value"] for p in stage["picklistValues"]][0] == "Prospecting"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["Competitor__c"]["custom"] is True
    assert fields["Region__c"]["type"] == "string"
    assert store.field_types("Widget__c") == {"Id": "string", "Size": "double"}
    assert [o["name"] for o in store.describe_global("62.0")["sobjects"]] == [
        "Opportunity",
        "Widget__c",
    ]


def test_update_record_bumps_modstamp_past_everything() -> None:
    t = synthetic_table("Opportunity", 20)
    store = OrgStore({"Opportunity": t})
    newest = pc.max(t["SystemModstamp"]).as_py()
    rid = t["Id"][4].as_py()
    stamp = store.update_record("Opportunity", rid, {"Amount": 1.0})
    after = store.table("Opportunity")
    row = after.filter(pc.equal(after["Id"], rid)).to_pylist()[0]
    assert stamp > newest and row["SystemModstamp"] == stamp == row["LastModifiedDate"]
    assert row["Amount"] == 1.0
    untouched = after.filter(pc.not_equal(after["Id"], rid))
    assert untouched.equals(t.filter(pc.not_equal(t["Id"], rid)))
    with pytest.raises(KeyError):
        store.update_record("Opportunity", "nope")


def test_json_records_other_arrow_types() -> None:
    ts = pa.timestamp("us", tz="Etc/UTC")  # what DuckDB returns for TIMESTAMPTZ
    t = pa.table(
        {
            "Id": ["a0X1", "a0X2"],
            "Big": pa.array(["x\\y", None], pa.large_string()),
            "Nothing": pa.nulls(2),
            "Count": pa.array([3, None], pa.int32()),
            "When": pa.array([datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), None], ts),
            "Day": pa.array([date(2024, 2, 29), date(2024, 3, 1)]),
        }
    )
    got = json.loads(b"[" + json_records(t, "Thing__c", t.column_names[1:], "62.0") + b"]")
    assert [r["Big"] for r in got] == ["x\\y", None]
    assert [r["Nothing"] for r in got] == [None, None]
    assert [r["Count"] for r in got] == [3, None]
    assert [r["When"] for r in got] == ["2024-02-29T23:59:59.999+0000", None]  # truncated to ms
    assert [r["Day"] for r in got] == ["2024-02-29", "2024-03-01"]
