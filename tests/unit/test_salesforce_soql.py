"""SOQL building: identifiers are validated, never injected; literals rendered from datetimes."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from assets.salesforce.soql import (
    InvalidIdentifierError,
    build_count,
    build_select,
    parse_extra_fields,
    soql_datetime,
    validate_identifier,
)
from sandbox.schema import OBJECTS


@pytest.mark.parametrize(
    "name", ["Id", "StageName", "MQL_Date__c", "ns__Tier__c", "Product2", "Account__r", "X"]
)
def test_valid_identifiers_pass(name):
    assert validate_identifier(name) == name


def test_every_contract_name_is_a_valid_identifier():
    for obj in OBJECTS.values():
        validate_identifier(obj.name)
        for f in obj.fields:
            validate_identifier(f.name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Id FROM User--",
        "Name, (SELECT Id FROM Contacts)",
        "x' OR '1'='1",
        "Amount__c; DELETE",
        "Account.Name",
        "Id,Name",
        "a b",
        "_x",
        "x_",
        "A___c",
        "1abc",
        "Name\nFROM",
        "Tier__c)",
        "A" * 81,
    ],
)
def test_injection_and_malformed_names_are_rejected(name):
    with pytest.raises(InvalidIdentifierError):
        validate_identifier(name)


def test_build_select_rejects_injected_field_before_querying():
    with pytest.raises(InvalidIdentifierError, match="field name on Opportunity"):
        build_select("Opportunity", ["Id", "Name FROM User WHERE Id != null--"])
    with pytest.raises(InvalidIdentifierError, match="object name"):
        build_select("Opportunity WHERE IsWon = true", ["Id"])


def test_build_select_exact_text():
    since = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    soql = build_select(
        "Opportunity", ["Id", "Amount"], "SystemModstamp", since, ("SystemModstamp", "Id")
    )
    assert soql == (
        "SELECT Id, Amount FROM Opportunity WHERE SystemModstamp >= 2024-05-01T12:30:15.123Z"
        " ORDER BY SystemModstamp ASC, Id ASC"
    )
    assert build_select("User", ["Id"]) == "SELECT Id FROM User"
    assert build_count("Lead", "SystemModstamp", since) == (
        "SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2024-05-01T12:30:15.123Z"
    )


def test_soql_datetime_converts_to_utc_and_rejects_text():
    cet = timezone(timedelta(hours=2))
    assert soql_datetime(datetime(2024, 1, 1, 2, 0, tzinfo=cet)) == "2024-01-01T00:00:00.000Z"
    assert soql_datetime(datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000Z"  # naive = UTC
    with pytest.raises(TypeError):
        soql_datetime("2024-01-01T00:00:00Z OR IsDeleted = true")  # type: ignore[arg-type]


def test_parse_extra_fields():
    got = parse_extra_fields("Opportunity.My_Field__c, Account.Tier__c,Opportunity.My_Field__c")
    assert got == {"Opportunity": ["My_Field__c"], "Account": ["Tier__c"]}
    assert parse_extra_fields(["Lead.A__c", "Lead.B__c"]) == {"Lead": ["A__c", "B__c"]}
    assert parse_extra_fields(None) == {} and parse_extra_fields("") == {}
    with pytest.raises(InvalidIdentifierError, match="Object.Field"):
        parse_extra_fields("Tier__c")
    with pytest.raises(InvalidIdentifierError):
        parse_extra_fields("Opportunity.Amount) FROM User--")
