"""SOQL subset: parsing, checking against the org, translation to SQL run on DuckDB."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pytest

from sandbox import soql

TYPES = {
    "Opportunity": {
        "Id": "id",
        "Name": "string",
        "Amount": "currency",
        "CloseDate": "date",
        "SystemModstamp": "datetime",
        "IsWon": "boolean",
        "IsDeleted": "boolean",
    }
}


def _resolve(name: str) -> str | None:
    return next((k for k in TYPES if k.lower() == name.lower()), None)


def _translate(text: str, include_deleted: bool = False) -> soql.Translated:
    return soql.translate(
        soql.parse(text), _resolve, TYPES.__getitem__, include_deleted, table_sql="t"
    )


def _table() -> pa.Table:
    ts = pa.timestamp("ms", tz="UTC")
    return pa.table(
        {
            "Id": ["006A", "006B", "006C", "006D", "006E"],
            "Name": ["Acme", "acme corp", None, "Globex", "O'Brien"],
            "Amount": [100.0, None, 50.5, 7.0, 12.0],
            "CloseDate": pa.array(
                [date(2024, 1, 1), date(2024, 2, 1), None, date(2024, 3, 1), date(2024, 4, 1)]
            ),
            "SystemModstamp": pa.array(
                [
                    datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC),
                    datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
                    datetime(2024, 1, 2, tzinfo=UTC),
                    datetime(2024, 1, 3, tzinfo=UTC),
                    datetime(2024, 1, 4, tzinfo=UTC),
                ],
                ts,
            ),
            "IsWon": [True, False, None, True, False],
            "IsDeleted": [False, False, False, True, False],
        }
    )


def _ids(text: str, include_deleted: bool = False) -> list[str]:
    tr = _translate(text, include_deleted)
    con = duckdb.connect()
    con.register("t", _table())
    rows = con.execute(tr.sql, tr.params).fetchall()
    id_pos = tr.fields.index("Id") if "Id" in tr.fields else len(tr.fields)
    return [r[id_pos] for r in rows]


def test_keywords_and_fields_are_case_insensitive_and_canonicalised() -> None:
    tr = _translate("select id, NAME from opportunity where ISWON = TRUE order by amount desc")
    assert tr.object_name == "Opportunity"
    assert tr.fields == ["Id", "Name"]
    assert _ids("select id from opportunity where iswon = true order by amount desc") == ["006A"]


def test_query_excludes_deleted_and_query_all_includes_them() -> None:
    assert "006D" not in _ids("SELECT Id FROM Opportunity")
    assert "006D" in _ids("SELECT Id FROM Opportunity", include_deleted=True)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2024-01-01T00:00:00Z", ["006B", "006C", "006E"]),
        ("2024-01-01T00:00:00.000+0000", ["006B", "006C", "006E"]),
        ("2024-01-01T01:00:00+01:00", ["006B", "006C", "006E"]),  # same instant
        ("2024-01-01T00:00:01.000Z", ["006C", "006E"]),  # strictly greater
    ],
)
def test_incremental_systemmodstamp_filter_is_exact(literal: str, expected: list[str]) -> None:
    assert _ids(f"SELECT Id FROM Opportunity WHERE SystemModstamp > {literal} ORDER BY Id") == (
        expected
    )


def test_greater_or_equal_includes_the_boundary() -> None:
    got = _ids(
        "SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-01-01T00:00:01Z ORDER BY Id"
    )
    assert got == ["006B", "006C", "006E"]


def test_string_equality_and_like_are_case_insensitive() -> None:
    assert _ids("SELECT Id FROM Opportunity WHERE Name = 'ACME'") == ["006A"]
    assert _ids("SELECT Id FROM Opportunity WHERE Name LIKE 'acme%' ORDER BY Id") == [
        "006A",
        "006B",
    ]
    assert _ids(r"SELECT Id FROM Opportunity WHERE Name = 'O\'Brien'") == ["006E"]


def test_null_in_and_not_equal_semantics() -> None:
    assert _ids("SELECT Id FROM Opportunity WHERE Name = null") == ["006C"]
    # SOQL: != includes nulls
    assert _ids("SELECT Id FROM Opportunity WHERE Name != 'Acme' ORDER BY Id") == [
        "006B",
        "006C",
        "006E",
    ]
    assert _ids("SELECT Id FROM Opportunity WHERE Id IN ('006A', '006E') ORDER BY Id") == [
        "006A",
        "006E",
    ]
    assert _ids(
        "SELECT Id FROM Opportunity WHERE (Amount > 20 OR Amount = null) AND NOT IsWon = false"
        " ORDER BY Id"
    ) == ["006A", "006C"]  # 006C: IsWon null, so `IsWon = false` is false and NOT makes it true


def test_order_by_defaults_nulls_first_ascending_and_limit_offset() -> None:
    assert _ids("SELECT Id FROM Opportunity ORDER BY Amount") == ["006B", "006E", "006C", "006A"]
    assert _ids("SELECT Id FROM Opportunity ORDER BY Amount DESC") == [
        "006A",
        "006C",
        "006E",
        "006B",
    ]
    assert _ids("SELECT Id FROM Opportunity ORDER BY Amount DESC LIMIT 2 OFFSET 1") == [
        "006C",
        "006E",
    ]


def test_id_is_selected_hidden_when_not_asked_for() -> None:
    tr = _translate("SELECT Name FROM Opportunity")
    assert '"Id" AS "__sf_id"' in tr.sql


def test_count_only() -> None:
    tr = _translate("SELECT COUNT() FROM Opportunity WHERE Amount > 10")
    con = duckdb.connect()
    con.register("t", _table())
    assert tr.count_only
    assert (
        con.execute(tr.count_sql, tr.params).fetchone()[0] == 3
    )  # 006A, 006C, 006E (006D is deleted)


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("SELECT Id FROM Foo", "INVALID_TYPE", "sObject type 'Foo' is not supported"),
        ("SELECT Id, Bogus FROM Opportunity", "INVALID_FIELD", "No such column 'Bogus'"),
        ("SELECT Id FROM Opportunity WHERE Bogus = 1", "INVALID_FIELD", "No such column"),
        (
            "SELECT Id FROM Opportunity WHERE CloseDate > '2024-01-01'",
            "INVALID_FIELD",
            "must be of type date",
        ),
        (
            "SELECT Id FROM Opportunity WHERE SystemModstamp > 2024-01-01",
            "INVALID_FIELD",
            "must be of type datetime",
        ),
        ("SELECT Id FROM Opportunity WHERE Name = 5", "INVALID_FIELD", "must be of type string"),
        ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected end"),
        ("SELEC Id FROM Opportunity", "MALFORMED_QUERY", "expected SELECT"),
        ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected end"),
        ("SELECT Id FROM Opportunity LIMIT x", "MALFORMED_QUERY", "LIMIT"),
        ("SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:3", "MALFORMED_QUERY", ""),
        ("SELECT Account.Name FROM Opportunity", "MALFORMED_QUERY", "relationship"),
        ("SELECT Id, Id FROM Opportunity", "MALFORMED_QUERY", "duplicate field"),
        ("SELECT Id FROM Opportunity trailing", "MALFORMED_QUERY", "unexpected token"),
        ("", "MALFORMED_QUERY", "query string is required"),
    ],
)
def test_errors_carry_salesforce_codes(text: str, code: str, fragment: str) -> None:
    with pytest.raises(soql.SoqlError) as info:
        _translate(text)
    assert info.value.error_code == code
    assert fragment in info.value.message


def test_error_message_points_at_the_column() -> None:
    with pytest.raises(soql.SoqlError) as info:
        _translate("SELECT Id, Bogus FROM Opportunity")
    assert "ERROR at Row:1:Column:12" in info.value.message


def test_datetime_literal_parsing() -> None:
    expected = datetime(2024, 5, 1, 11, 34, 56, 123000, tzinfo=UTC)
    assert soql.parse_datetime_literal("2024-05-01T12:34:56.123+0100") == expected
    assert soql.parse_datetime_literal("2024-05-01T11:34:56.123Z") == expected
    assert soql.parse_datetime_literal("2024-05-01T10:34:56.123-01:00") == expected
