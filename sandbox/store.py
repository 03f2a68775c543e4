"""The sandbox's data: one Arrow table per SObject, describe metadata, and the wire encoders.

Tables are typed to the contract in `sandbox.schema` (strings, bool, float64, int64, date32,
timestamp[ms, UTC]); objects and columns the schema does not know are kept and described from
their Arrow type. Encoding to Salesforce JSON records and Bulk API 2.0 CSV is vectorised with
pyarrow compute (no per-value Python), which keeps the server far from being the bottleneck of
an extraction: about 1M Opportunity rows in ~3-4 s of one core.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.schema import OBJECTS, SObject

log = logging.getLogger(__name__)

TS_TYPE = pa.timestamp("ms", tz="UTC")

ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "string": pa.string(),
    "picklist": pa.string(),
    "reference": pa.string(),
    "email": pa.string(),
    "textarea": pa.string(),
    "boolean": pa.bool_(),
    "currency": pa.float64(),
    "double": pa.float64(),
    "percent": pa.float64(),
    "int": pa.int64(),
    "date": pa.date32(),
    "datetime": TS_TYPE,
}

# Salesforce key prefixes (first 3 characters of record Ids) of the standard objects.
KEY_PREFIXES = {
    "UserRole": "00E", "User": "005", "Account": "001", "Contact": "003", "Lead": "00Q",
    "Campaign": "701", "CampaignMember": "00v", "Opportunity": "006", "OpportunityHistory": "008",
    "OpportunityContactRole": "00K", "Product2": "01t", "OpportunityLineItem": "00k",
    "Task": "00T", "Event": "00U", "ForecastingQuota": "0J9", "CurrencyType": "02B",
    "DatedConversionRate": "04w",
}  # fmt: skip

_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "string": "xsd:string", "picklist": "xsd:string",
    "email": "xsd:string", "textarea": "xsd:string", "boolean": "xsd:boolean",
    "currency": "xsd:double", "double": "xsd:double", "percent": "xsd:double", "int": "xsd:int",
    "date": "xsd:date", "datetime": "xsd:dateTime",
}  # fmt: skip


def describe_type_of(arrow_type: pa.DataType) -> str:
    """The describe type reported for a column the schema does not know."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_date(arrow_type):
        return "date"
    return "string"


def _cast_column(col: pa.ChunkedArray, target: pa.DataType, where: str) -> pa.ChunkedArray:
    if col.type == target:
        return col
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), target) if len(col) else pa.chunked_array([], target)
    try:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return _cast_strings(col, target)
        if pa.types.is_timestamp(target) and pa.types.is_timestamp(col.type):
            if col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
            return pc.cast(col, target, safe=False)  # to milliseconds, as Salesforce stores
        return col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ValueError(f"{where}: cannot convert {col.type} to {target}: {exc}") from exc


def _cast_strings(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Strings as they appear in CSV files (Salesforce conventions) -> typed column."""
    col = pc.if_else(pc.equal(pc.utf8_trim_whitespace(col), ""), None, col)
    if pa.types.is_string(target):
        return col
    if pa.types.is_boolean(target):
        low = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        valid = pc.or_(pc.is_null(low), pc.is_in(low, pa.array(["true", "false", "1", "0"])))
        if not pc.all(valid).as_py():
            bad = pc.filter(col, pc.invert(pc.fill_null(valid, True)))[0].as_py()
            raise ValueError(f"not a boolean: {bad!r}")
        truthy = pc.is_in(low, pa.array(["true", "1"]))
        return pc.if_else(pc.is_null(low), pa.scalar(None, pa.bool_()), truthy)
    if pa.types.is_timestamp(target):
        values = [None if v is None else _parse_ts(v) for v in col.to_pylist()]
        return pa.chunked_array([pa.array(values, target)])
    return col.cast(target)


def _parse_ts(text: str) -> datetime:
    from sandbox.soql import parse_datetime_literal

    text = text.strip().replace(" ", "T", 1)
    try:
        return parse_datetime_literal(text)
    except ValueError:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def coerce_table(obj: str, table: pa.Table) -> pa.Table:
    """Cast the schema's fields of `table` to their contract types; keep other columns as is."""
    sobj = OBJECTS.get(obj)
    if sobj is None:
        return table
    known = {f.name: f for f in sobj.fields}
    arrays, names = [], []
    for name, col in zip(table.column_names, table.columns, strict=True):
        spec = known.get(name)
        if spec is not None:
            col = _cast_column(col, ARROW_TYPES[spec.type], f"{obj}.{name}")
        elif pa.types.is_timestamp(col.type):
            col = _cast_column(col, TS_TYPE, f"{obj}.{name}")
        names.append(name)
        arrays.append(col)
    return pa.table(arrays, names=names)


def read_table_file(path: Path, obj: str) -> pa.Table:
    """One `<SObject>.parquet` or `<SObject>.csv` file (API field names as headers)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        import pyarrow.csv as pcsv

        with open(path, encoding="utf-8") as fh:
            header = next(iter(fh), "")
        names = [h.strip().strip('"') for h in header.rstrip("\r\n").split(",")]
        table = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    try:
        return coerce_table(obj, table)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


class OrgStore:
    """Thread-safe holder of the org's tables (replace whole tables or patch single records)."""

    def __init__(self, tables: Mapping[str, pa.Table] | None = None) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, pa.Table] = {}
        if tables:
            self.set_tables(tables)

    # -- data ----------------------------------------------------------------------------
    def set_tables(self, tables: Mapping[str, pa.Table]) -> None:
        coerced = {name: coerce_table(name, t).combine_chunks() for name, t in tables.items()}
        with self._lock:
            self._tables = coerced
        log.info("sandbox org set: %s", ", ".join(f"{k}={v.num_rows}" for k, v in coerced.items()))

    def set_table(self, name: str, table: pa.Table) -> None:
        coerced = coerce_table(name, table).combine_chunks()
        with self._lock:
            canonical = self.resolve(name) or name
            self._tables[canonical] = coerced

    def table(self, name: str) -> pa.Table:
        with self._lock:
            return self._tables[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._tables)

    def resolve(self, name: str) -> str | None:
        low = name.lower()
        with self._lock:
            for canonical in self._tables:
                if canonical.lower() == low:
                    return canonical
        return None

    def field_types(self, obj: str) -> dict[str, str]:
        table = self.table(obj)
        sobj = OBJECTS.get(obj)
        known = {f.name: f.type for f in sobj.fields} if sobj else {}
        return {
            f.name: known.get(f.name) or describe_type_of(f.type)
            for f in table.schema
            if not f.name.startswith("__")
        }

    def update_record(
        self,
        obj: str,
        record_id: str,
        changes: Mapping[str, Any] | None = None,
        modstamp: datetime | None = None,
    ) -> datetime:
        """Change one record the way a user edit would: fields in `changes`, then
        LastModifiedDate/SystemModstamp set to `modstamp` (default: one second after the newest
        SystemModstamp in the table, so it sorts after everything already extracted)."""
        with self._lock:
            table = self._tables[obj]
            mask = pc.fill_null(pc.equal(table["Id"], record_id), False)
            if not pc.any(mask).as_py():
                raise KeyError(f"{obj} has no record {record_id}")
            if modstamp is None:
                newest = (
                    pc.max(table["SystemModstamp"]).as_py()
                    if "SystemModstamp" in (table.column_names)
                    else None
                )
                base = newest or datetime.now(UTC)
                modstamp = base + timedelta(seconds=1)
            modstamp = modstamp.astimezone(UTC)
            modstamp = modstamp.replace(microsecond=modstamp.microsecond // 1000 * 1000)
            updates = dict(changes or {})
            for audit in ("LastModifiedDate", "SystemModstamp"):
                if audit in table.column_names:
                    updates[audit] = modstamp
            for name, value in updates.items():
                idx = table.column_names.index(name)
                col = table.column(idx)
                scalar = pa.scalar(value, type=col.type)
                table = table.set_column(idx, name, pc.if_else(mask, scalar, col))
            self._tables[obj] = table.combine_chunks()
        log.info("sandbox: updated %s %s (SystemModstamp=%s)", obj, record_id, modstamp.isoformat())
        return modstamp

    # -- describe ------------------------------------------------------------------------
    def describe_global(self, version: str) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [self._sobject_summary(name, version) for name in self.names()],
        }

    def _sobject_summary(self, name: str, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{name}"
        sobj = OBJECTS.get(name)
        return {
            "activateable": False,
            "createable": False,
            "custom": name.endswith("__c"),
            "customSetting": False,
            "deletable": bool(sobj.deletable) if sobj else False,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "keyPrefix": KEY_PREFIXES.get(name),
            "label": name,
            "labelPlural": name + "s",
            "layoutable": True,
            "mergeable": False,
            "mruEnabled": False,
            "name": name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": False,
            "undeletable": bool(sobj.deletable) if sobj else False,
            "updateable": False,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def describe(self, name: str, version: str) -> dict[str, Any]:
        sobj: SObject | None = OBJECTS.get(name)
        known = {f.name: f for f in sobj.fields} if sobj else {}
        fields = []
        for fname, ftype in self.field_types(name).items():
            spec = known.get(fname)
            fields.append(_describe_field(fname, ftype, spec))
        out = self._sobject_summary(name, version)
        out.update({"fields": fields, "childRelationships": [], "recordTypeInfos": []})
        return out


def _describe_field(name: str, ftype: str, spec: Any) -> dict[str, Any]:
    length = {"id": 18, "reference": 18, "email": 80, "textarea": 32768}.get(
        ftype, 255 if ftype in ("string", "picklist") else 0
    )
    picklist = list(spec.picklist) if spec is not None else []
    reference_to = [spec.reference_to] if spec is not None and spec.reference_to else []
    nillable = spec.nillable if spec is not None else True
    precision, scale, digits = 0, 0, 0
    if ftype in ("currency", "double"):
        precision, scale = 18, 2
    elif ftype == "percent":
        precision, scale = 3, 0
    elif ftype == "int":
        digits = 9
    return {
        "name": name,
        "label": name.removesuffix("__c").replace("_", " "),
        "type": ftype,
        "soapType": _SOAP_TYPES.get(ftype, "xsd:string"),
        "nillable": bool(nillable),
        "length": length,
        "byteLength": length * 3,
        "precision": precision,
        "scale": scale,
        "digits": digits,
        "custom": name.endswith("__c"),
        "calculated": False,
        "createable": False,
        "updateable": False,
        "filterable": True,
        "sortable": ftype != "textarea",
        "groupable": ftype not in ("textarea", "currency", "double", "percent"),
        "unique": False,
        "externalId": False,
        "idLookup": name == "Id",
        "defaultValue": None,
        "defaultedOnCreate": name
        in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"),
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in picklist
        ],
        "referenceTo": reference_to,
        "relationshipName": (name[:-2] if name.endswith("Id") and reference_to else None),
    }


# -- wire encoders ---------------------------------------------------------------------------

_NEEDS_ESCAPE = r'[\x00-\x1f\\"]'
_RARE_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_SHORT_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]


def _json_strings(col: pa.Array) -> pa.Array:
    """Quoted, escaped JSON strings (null stays null)."""
    s = col
    if pc.any(pc.match_substring_regex(s, _NEEDS_ESCAPE)).as_py():
        for raw, escaped in _SHORT_ESCAPES:
            s = pc.replace_substring(s, raw, escaped)
        rare = pc.fill_null(pc.match_substring_regex(s, _RARE_CONTROL), False)
        if pc.any(rare).as_py():  # other control characters: \u00XX, row by row (rare)
            escaped = [
                json.dumps(v, ensure_ascii=False)[1:-1] if flag else None
                for v, flag in zip(col.to_pylist(), rare.to_pylist(), strict=True)
            ]
            s = pc.if_else(rare, pa.array(escaped, pa.string()), s)
    return pc.binary_join_element_wise('"', s, '"', "")


def _timestamp_strings(col: pa.Array, suffix: str) -> pa.Array:
    # Salesforce keeps milliseconds: finer input (DuckDB gives microseconds) is truncated.
    naive = pc.cast(pc.cast(col, TS_TYPE, safe=False), pa.timestamp("ms"))
    text = pc.binary_replace_slice(pc.cast(naive, pa.string()), start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, suffix, "")


def _float_strings(col: pa.Array) -> pa.Array:
    finite = pc.is_finite(col)
    text = pc.cast(pc.if_else(finite, col, None), pa.string())
    integral = pc.match_substring_regex(text, r"^-?\d+$")
    return pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)


def _json_parts(col: pa.Array) -> tuple[str, pa.Array, str]:
    """One column as (text before, JSON values, text after) for the row join.

    Quoted types without nulls put their quotes in the constant parts (cheaper than a join per
    column); with nulls the values carry their quotes and nulls become `null`.
    """
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        if not pa.types.is_string(t):
            col = pc.cast(col, pa.string())
        return "", pc.fill_null(_json_strings(col), "null"), ""
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_timestamp(t):
            raw, after = _timestamp_strings(col, ""), '+0000"'
        else:
            raw, after = pc.cast(col, pa.string()), '"'
        if col.null_count == 0:
            return '"', raw, after
        return "", pc.fill_null(pc.binary_join_element_wise('"', raw, after, ""), "null"), ""
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = _float_strings(pc.cast(col, pa.float64()) if pa.types.is_decimal(t) else col)
    elif pa.types.is_boolean(t) or pa.types.is_integer(t):
        values = pc.cast(col, pa.string())
    elif pa.types.is_null(t):
        return "null", pa.scalar("", pa.string()), ""
    else:
        values = _json_strings(pc.cast(col, pa.string()))
    return "", pc.fill_null(values, "null") if values.null_count else values, ""


def _concat_rows(rows: pa.Array) -> bytes:
    """The data buffer of a string array holds its values back to back: take it in one copy."""
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    if len(rows) == 0:
        return b""
    validity, offsets, data = rows.buffers()
    width = np.int64 if pa.types.is_large_string(rows.type) else np.int32
    off = np.frombuffer(offsets, dtype=width)
    start, end = int(off[rows.offset]), int(off[rows.offset + len(rows)])
    return memoryview(data)[start:end].tobytes()


def json_records(table: pa.Table, obj: str, fields: list[str], version: str) -> bytes:
    """`table` rows as the comma-separated JSON records of a query page (no brackets)."""
    if table.num_rows == 0:
        return b""
    table = table.combine_chunks()
    id_col = (
        "Id"
        if "Id" in table.column_names
        else ("__sf_id" if "__sf_id" in table.column_names else None)
    )
    url_base = f"/services/data/v{version}/sobjects/{obj}/"
    if id_col is not None:
        url = pc.binary_join_element_wise(
            '"' + url_base, pc.fill_null(table[id_col].chunk(0), ""), '"', ""
        )
    else:
        url = pa.scalar('"' + url_base.rstrip("/") + '"')
    parts: list[Any] = ['{"attributes":{"type":' + json.dumps(obj) + ',"url":', url, "}"]
    for name in fields:
        before, values, after = _json_parts(table[name].chunk(0))
        parts[-1] += "," + json.dumps(name) + ":" + before
        parts += [values, after]
    parts[-1] += "},"
    rows = pc.binary_join_element_wise(*parts, "")
    return _concat_rows(rows)[:-1]


def _csv_values(col: pa.Array) -> pa.Array:
    t = col.type
    if pa.types.is_timestamp(t):
        return _timestamp_strings(col, "Z")
    if pa.types.is_floating(t):
        return _float_strings(col)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col
    return pc.cast(col, pa.string())


def csv_records(
    table: pa.Table, fields: list[str], delimiter: str, eol: str, header: bool
) -> bytes:
    """Bulk API 2.0 result CSV: quoted values, empty for null, true/false, ISO datetimes in UTC."""
    import pyarrow.csv as pcsv

    table = table.combine_chunks()
    cols = [
        _csv_values(table[name].chunk(0)) if table.num_rows else pa.array([], pa.string())
        for name in fields
    ]
    out = pa.BufferOutputStream()
    pcsv.write_csv(
        pa.table(cols, names=fields),
        out,
        write_options=pcsv.WriteOptions(
            include_header=header,
            delimiter=delimiter,
            eol=eol,
            quoting_style="all_valid",
            quoting_header="needed",
        ),
    )
    return out.getvalue().to_pybytes()


# -- synthetic tables (tests, benchmarks) ----------------------------------------------------


def synthetic_table(obj: str, rows: int, seed: int = 0, deleted_share: float = 0.03) -> pa.Table:
    """A deterministic table of `rows` records typed exactly like `sandbox.schema` says.

    Not a realistic org (that is `sandbox.org`): values exercise the wire format — quotes,
    backslashes, newlines and non-ASCII in text, nulls in nillable fields, integral and
    fractional amounts, millisecond timestamps, and ~3% soft-deleted rows.
    """
    sobj = OBJECTS[obj]
    rng = np.random.default_rng(seed)
    idx = np.arange(rows)
    idx_str = pc.cast(pa.array(idx), pa.string())
    prefix = KEY_PREFIXES.get(obj, "a0X")

    def ids(pfx: str, values: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(
            pfx,
            pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width=12, padding="0"),
            "AAA",
            "",
        )

    base_ms = 1_672_531_200_000  # 2023-01-01T00:00:00Z
    created = base_ms + rng.integers(0, 3 * 365 * 86_400_000, rows)
    modified = created + rng.integers(0, 90 * 86_400_000, rows)
    cols: dict[str, pa.Array] = {}
    for f in sobj.fields:
        nulls = (idx % 7 == 3) if f.nillable else np.zeros(rows, bool)
        if f.name == "Id":
            arr = ids(prefix, idx)
        elif f.name in ("CreatedDate",):
            arr = pa.array(created, TS_TYPE)
        elif f.name in ("LastModifiedDate", "SystemModstamp"):
            arr = pa.array(modified, TS_TYPE)
        elif f.name == "IsDeleted":
            arr = pa.array(rng.random(rows) < deleted_share)
        elif f.type in ("string", "textarea"):
            arr = pc.binary_join_element_wise(f"{obj} {f.name} ", idx_str, "")
            special = idx % 97 == 5
            if special.any():
                arr = pc.if_else(
                    pa.array(special), pa.scalar('Acme "Quoted" \\ back\nslash é\t✓'), arr
                )
        elif f.type == "email":
            arr = pc.binary_join_element_wise("user", idx_str, "@example.com", "")
        elif f.type == "picklist":
            values = list(f.picklist) or ["A", "B"]
            arr = pa.array(
                np.array(values, dtype=object)[rng.integers(0, len(values), rows)], pa.string()
            )
        elif f.type in ("reference", "id"):
            ref_prefix = KEY_PREFIXES.get(f.reference_to or "", "000")
            arr = ids(ref_prefix, rng.integers(0, max(rows // 10, 1), rows))
        elif f.type == "boolean":
            arr = pa.array(rng.random(rows) < 0.5)
        elif f.type in ("currency", "double", "percent"):
            vals = np.round(rng.random(rows) * 100_000, 2)
            vals[idx % 5 == 0] = np.round(vals[idx % 5 == 0])  # integral amounts
            arr = pa.array(vals, pa.float64())
        elif f.type == "int":
            arr = pa.array(rng.integers(0, 10_000, rows), pa.int64())
        elif f.type == "date":
            arr = pa.array(
                (created // 86_400_000 + rng.integers(0, 400, rows)).astype("int32"), pa.int32()
            ).cast(pa.date32())
        elif f.type == "datetime":
            arr = pa.array(created + rng.integers(0, 86_400_000, rows), TS_TYPE)
        else:  # pragma: no cover - schema types are all handled above
            raise ValueError(f"unhandled type {f.type}")
        if nulls.any():
            arr = pc.if_else(pa.array(nulls), pa.scalar(None, arr.type), arr)
        cols[f.name] = arr
    return pa.table(cols)
