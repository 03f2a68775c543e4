"""Which fields to extract per object, checked against `describe`, and their Arrow types.

The plan for an object = the fields the marts require (`sandbox.schema.OBJECTS`) + configured
extra fields (`SALESOPS_SF_EXTRA_FIELDS="Opportunity.Tier__c,Account.Region__c"` or Dagster
config). At run start each object's `describe` must list every required field (else a clear
error naming object and field); types come from `describe`, so a new custom field simply becomes
a new column (dlt evolves the table) without a manual migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from assets.salesforce.soql import validate_identifier
from sandbox.schema import OBJECTS, snake

CURSOR_FIELD = "SystemModstamp"
DELETED_FIELD = "IsDeleted"

_STRING_TYPES = {
    "id", "string", "picklist", "multipicklist", "reference", "email", "textarea", "phone",
    "url", "combobox", "encryptedstring", "time",
}  # fmt: skip
_FLOAT_TYPES = {"currency", "double", "percent"}
_INT_TYPES = {"int", "long"}
# Compound fields cannot be selected as one column by Bulk API and have no flat Arrow type.
_UNSUPPORTED_TYPES = {"address", "location", "base64", "anyType", "complexvalue"}


class MissingFieldError(RuntimeError):
    """describe lacks a field the marts need (or a configured extra field)."""


def arrow_type(sf_type: str) -> pa.DataType:
    """Arrow type for a Salesforce describe field type (unknown scalar types land as text)."""
    if sf_type == "boolean":
        return pa.bool_()
    if sf_type in _FLOAT_TYPES:
        return pa.float64()
    if sf_type in _INT_TYPES:
        return pa.int64()
    if sf_type == "date":
        return pa.date32()
    if sf_type == "datetime":
        # microseconds: DuckDB's TIMESTAMPTZ precision (ms would make dlt warn and coerce)
        return pa.timestamp("us", tz="UTC")
    return pa.string()


@dataclass(frozen=True)
class ObjectPlan:
    """One object's extraction plan: validated API names with their describe types."""

    name: str
    fields: tuple[str, ...]
    types: tuple[str, ...]  # describe types, aligned with fields
    deletable: bool

    @property
    def table_name(self) -> str:
        return snake(self.name)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in DuckDB (snake_case, as dlt's default naming gives them)."""
        return tuple(snake(f) for f in self.fields)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(c, arrow_type(t), nullable=(c != "id"))
                for c, t in zip(self.columns, self.types, strict=True)
            ]
        )

    @property
    def has_cursor(self) -> bool:
        return CURSOR_FIELD in self.fields


def required_fields(sobject: str) -> list[str]:
    """Fields the marts need on `sobject` (from sandbox.schema), in schema order."""
    try:
        obj = OBJECTS[sobject]
    except KeyError:
        raise KeyError(
            f"unknown Salesforce object {sobject!r}; known: {', '.join(OBJECTS)}"
        ) from None
    return list(obj.required)


def plan_object(
    sobject: str,
    describe: Mapping,
    extra_fields: Sequence[str] = (),
) -> ObjectPlan:
    """Build the plan for `sobject` from its `describe` answer (the JSON dict)."""
    validate_identifier(sobject, "object name")
    described = {f["name"]: f for f in describe.get("fields", [])}
    wanted = required_fields(sobject) if sobject in OBJECTS else []
    if CURSOR_FIELD not in wanted and CURSOR_FIELD in described:
        wanted.append(CURSOR_FIELD)
    missing = [f for f in wanted if f not in described]
    if missing:
        raise MissingFieldError(
            f"Salesforce object {sobject} lacks required field(s) {', '.join(missing)} "
            f"(describe lists {len(described)} fields). The marts need them: check the field "
            "API names, the integration user's field-level security, or the org edition."
        )
    fields = list(wanted)
    for extra in extra_fields:
        validate_identifier(extra, f"field name on {sobject}")
        if extra in fields:
            continue
        if extra not in described:
            raise MissingFieldError(
                f"configured extra field {sobject}.{extra} does not exist in the org's describe "
                f"of {sobject} (or is hidden from the integration user); fix "
                "SALESOPS_SF_EXTRA_FIELDS / the extract config"
            )
        if described[extra].get("type") in _UNSUPPORTED_TYPES:
            raise MissingFieldError(
                f"configured extra field {sobject}.{extra} has compound type "
                f"{described[extra].get('type')!r}, which cannot be extracted as one column; "
                "list its component fields instead"
            )
        fields.append(extra)
    for f in fields:
        validate_identifier(f, f"field name on {sobject}")
    types = tuple(str(described[f].get("type", "string")) for f in fields)
    deletable = DELETED_FIELD in described
    return ObjectPlan(sobject, tuple(fields), types, deletable)
