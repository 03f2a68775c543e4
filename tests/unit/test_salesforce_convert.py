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


# --- REST page bytes -> Arrow (fast pyarrow.json path) must equal the dict path --------------


def _page(records: list[dict], done: bool = True, nxt: str | None = None, indent=None) -> bytes:
    import json

    body = {"totalSize": len(records), "done": done, "records": records}
    if nxt:
        body["nextRecordsUrl"] = nxt
    return json.dumps(body, indent=indent).encode()


TRICKY = [
    {**RECORDS[0], "Name": 'quote " backslash \\ newline \n unicode é 🚀'},
    {**RECORDS[1]},
    {**RECORDS[0], "Id": "006C", "Seats__c": 7, "Probability": 12.5, "Amount": 3},
]


@pytest.mark.parametrize("indent", [None, 2])
def test_rest_page_fast_path_equals_dict_path(indent):
    from assets.salesforce.convert import rest_page_to_arrow

    table, done, nxt = rest_page_to_arrow(_page(TRICKY, False, "/next/1", indent), PLAN)
    assert (done, nxt) == (False, "/next/1")
    expected = records_to_arrow(TRICKY, PLAN)
    assert table.schema == expected.schema
    assert table.to_pylist() == expected.to_pylist()


def test_rest_page_with_number_sent_as_text_falls_back_to_same_values():
    from assets.salesforce.convert import rest_page_to_arrow

    odd = [{**RECORDS[0], "Amount": "1200.5", "Seats__c": "5"}]
    table, done, _ = rest_page_to_arrow(_page(odd), PLAN)
    assert done is True
    assert table.to_pylist() == records_to_arrow(odd, PLAN).to_pylist()
    assert table.column(PLAN.arrow_schema.names[2]).to_pylist() == [1200.5]


def test_rest_page_empty_and_invalid_bodies():
    import orjson

    from assets.salesforce.convert import rest_page_to_arrow

    empty, done, nxt = rest_page_to_arrow(_page([]), PLAN)
    assert (empty.num_rows, done, nxt) == (0, True, None)
    with pytest.raises(orjson.JSONDecodeError):
        rest_page_to_arrow(b'{"done": true, "records": [{"Id": "006', PLAN)


def test_bulk_csv_typed_parse_and_text_fallback_agree(monkeypatch):
    """The typed CSV parse (the fast path) and the text + cast path give the same table; pages
    the typed parse cannot read (TRUE, ints written 5.0, +0000 offsets) take the text path."""
    import assets.salesforce.convert as convert

    page = to_csv(RECORDS)
    typed = csv_to_arrow(page, PLAN)
    calls = []
    real = convert._coerce
    monkeypatch.setattr(convert, "_coerce", lambda *a: calls.append(a[2]) or real(*a))
    assert csv_to_arrow(page, PLAN).equals(typed) and calls == []  # fast path: no casts
    odd = (
        page.replace(b"true", b"TRUE").replace(b",5,", b",5.0,").replace(b"12.345Z", b"12.345+0000")
    )
    assert odd != page
    fallback = csv_to_arrow(odd, PLAN)
    assert calls, "the odd page should have gone through the text + cast path"
    assert fallback.equals(records_to_arrow(RECORDS, PLAN)), fallback.to_pylist()

    # the text path forced on the clean page gives exactly the typed parse's table
    def refuse(plan):
        raise pa.ArrowInvalid("forced")

    monkeypatch.setattr(convert, "_csv_typed_options", refuse)
    calls.clear()
    assert csv_to_arrow(page, PLAN).equals(typed) and calls
