"""REST JSON records and Bulk CSV pages become identical, correctly typed Arrow tables."""

import csv
import io
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from assets.salesforce.convert import ConversionError, csv_to_arrow, records_to_arrow
from assets.salesforce.fields import ObjectPlan

PLAN = ObjectPlan(
    "Opportunity",
    ("Id", "Name", "Amount", "Probability", "CloseDate", "IsWon", "SystemModstamp", "Seats__c"),
    ("id", "string", "currency", "percent", "date", "boolean", "datetime", "int"),
    True,
)

RECORDS = [
    {
        "attributes": {"type": "Opportunity", "url": "/x"},
        "Id": "006A",
        "Name": 'Big, "quoted" deal\nline 2',
        "Amount": 1200.5,
        "Probability": 60,
        "CloseDate": "2024-03-31",
        "IsWon": False,
        "SystemModstamp": "2024-03-01T10:11:12.345+0000",
        "Seats__c": 5.0,
    },
    {
        "attributes": {"type": "Opportunity", "url": "/y"},
        "Id": "006B",
        "Name": "",
        "Amount": None,
        "Probability": None,
        "CloseDate": None,
        "IsWon": True,
        "SystemModstamp": "2024-03-02T00:00:00.000+0000",
        "Seats__c": None,
    },
]


def to_csv(records):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PLAN.fields)
    for r in records:
        row = []
        for f in PLAN.fields:
            v = r[f]
            if v is None:
                row.append("")
            elif isinstance(v, bool):
                row.append("true" if v else "false")
            elif f == "SystemModstamp":
                row.append(v.replace("+0000", "Z"))
            elif f == "Seats__c":
                row.append(str(int(v)))
            else:
                row.append(str(v))
        w.writerow(row)
    return buf.getvalue().encode()


def test_records_are_typed():
    t = records_to_arrow(RECORDS, PLAN)
    assert t.column_names == ["id", "name", "amount", "probability", "close_date", "is_won",
                              "system_modstamp", "seats_c"]  # fmt: skip
    row = t.to_pylist()[0]
    assert row["amount"] == 1200.5 and row["probability"] == 60.0
    assert row["close_date"] == date(2024, 3, 31)
    assert row["system_modstamp"] == datetime(2024, 3, 1, 10, 11, 12, 345000, tzinfo=UTC)
    assert row["seats_c"] == 5 and t.schema.field("seats_c").type == pa.int64()
    assert t.to_pylist()[1]["name"] is None  # "" is null in Salesforce


def test_bulk_csv_equals_rest_json():
    rest = records_to_arrow(RECORDS, PLAN)
    bulk = csv_to_arrow(to_csv(RECORDS), PLAN)
    assert bulk.schema == rest.schema
    assert bulk.equals(rest), (bulk.to_pylist(), rest.to_pylist())


def test_empty_pages_keep_the_schema():
    assert records_to_arrow([], PLAN).schema == PLAN.arrow_schema
    assert csv_to_arrow(b"", PLAN).num_rows == 0


def test_bad_value_names_object_and_field():
    bad = [dict(RECORDS[0], CloseDate="not a date")]
    with pytest.raises(ConversionError, match=r"Opportunity\.CloseDate"):
        records_to_arrow(bad, PLAN)


def test_record_missing_a_field_gives_null():
    partial = [{k: v for k, v in RECORDS[0].items() if k != "Seats__c"}, RECORDS[1]]
    t = records_to_arrow(partial, PLAN)
    assert t["seats_c"].to_pylist() == [None, None]
    assert t["amount"].to_pylist() == [1200.5, None]
