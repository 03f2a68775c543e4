"""SOQL building with validated identifiers: nothing user-supplied is ever string-injected.

Object and field names come from `sandbox.schema`, from configuration (extra custom fields) and
from `describe`; every one of them must match the Salesforce API-name grammar before it reaches a
query. Cursor values are rendered from `datetime` objects, never from text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

# API names: a letter, then letters/digits/single underscores; custom suffixes __c, __r, etc.
# Namespaced custom fields look like ns__Field__c. No dots, spaces, quotes or operators.
_IDENT = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?:__[A-Za-z0-9]+(?:_(?!_)[A-Za-z0-9]+)*)*$")
MAX_IDENT_LEN = 80


class InvalidIdentifierError(ValueError):
    """An object or field name that is not a Salesforce API name (rejected before any query)."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a valid Salesforce API name, else raise InvalidIdentifierError."""
    if (
        not isinstance(name, str)
        or len(name) > MAX_IDENT_LEN
        or name.endswith("_")
        or not _IDENT.match(name)
    ):
        raise InvalidIdentifierError(
            f"invalid Salesforce {what} {name!r}: API names are letters, digits and single "
            "underscores (custom ones end in __c), at most 80 characters"
        )
    return name


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (UTC, millisecond precision), e.g. 2024-05-01T12:00:00.000Z."""
    if not isinstance(value, datetime):
        raise TypeError(f"cursor must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def build_select(
    sobject: str,
    fields: Sequence[str],
    cursor_field: str | None = None,
    since: datetime | None = None,
    order_by: Sequence[str] = (),
) -> str:
    """`SELECT f1, f2 FROM Obj [WHERE cursor >= since] [ORDER BY ...]` with validated names."""
    if not fields:
        raise ValueError(f"no fields to select from {sobject}")
    obj = validate_identifier(sobject, "object name")
    cols = ", ".join(validate_identifier(f, f"field name on {sobject}") for f in fields)
    soql = f"SELECT {cols} FROM {obj}"
    if since is not None:
        if cursor_field is None:
            raise ValueError("since needs a cursor_field")
        soql += f" WHERE {validate_identifier(cursor_field, 'cursor field')} >= "
        soql += soql_datetime(since)
    if order_by:
        soql += " ORDER BY " + ", ".join(
            validate_identifier(f, "order-by field") + " ASC" for f in order_by
        )
    return soql


def build_count(
    sobject: str, cursor_field: str | None = None, since: datetime | None = None
) -> str:
    """`SELECT COUNT() FROM Obj [WHERE cursor >= since]` (the answer is in totalSize)."""
    soql = f"SELECT COUNT() FROM {validate_identifier(sobject, 'object name')}"
    if since is not None and cursor_field is not None:
        soql += f" WHERE {validate_identifier(cursor_field, 'cursor field')} >= "
        soql += soql_datetime(since)
    return soql


def parse_extra_fields(specs: Iterable[str] | str | None) -> dict[str, list[str]]:
    """Parse "Opportunity.My_Field__c,Account.Tier__c" (or a list of such) into {object: [field]}.

    Every part is validated; a malformed entry raises with the offending text quoted.
    """
    if specs is None:
        return {}
    if isinstance(specs, str):
        specs = [specs]
    out: dict[str, list[str]] = {}
    for spec in specs:
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            obj, sep, fld = item.partition(".")
            if not sep:
                raise InvalidIdentifierError(
                    f"extra field {item!r} must be written Object.Field (e.g. Opportunity.Tier__c)"
                )
            validate_identifier(obj.strip(), "object name")
            validate_identifier(fld.strip(), "field name")
            fields = out.setdefault(obj.strip(), [])
            if fld.strip() not in fields:
                fields.append(fld.strip())
    return out
