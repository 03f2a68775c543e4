"""The SOQL subset the sandbox understands, parsed and translated to DuckDB SQL.

Supported:

    SELECT <field>[, <field>...] | COUNT()
    FROM <SObject>
    [WHERE <condition>]          -- comparisons joined by AND / OR / NOT, parentheses
    [ORDER BY <field> [ASC|DESC] [NULLS FIRST|LAST][, ...]]
    [LIMIT <n>] [OFFSET <n>]

A comparison is `<field> <op> <literal>` with op one of = != <> < <= > >= LIKE, or
`<field> [NOT] IN (<literal>, ...)`. Literals: 'quoted strings', numbers, true/false, null,
dates (2024-01-31) and datetimes (2024-01-31T00:00:00Z, +00:00, .000+0000), unquoted as in SOQL.
Keywords and field names are case-insensitive; string `=` and LIKE compare case-insensitively as
Salesforce does. Relationship paths (Account.Name), aggregate functions other than COUNT(), date
functions and date literals such as LAST_N_DAYS are rejected with MALFORMED_QUERY.

Errors are `SoqlError(error_code, message)` with the Salesforce error codes MALFORMED_QUERY,
INVALID_TYPE and INVALID_FIELD; the HTTP layer turns them into Salesforce's error JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

MALFORMED_QUERY = "MALFORMED_QUERY"
INVALID_TYPE = "INVALID_TYPE"
INVALID_FIELD = "INVALID_FIELD"


class SoqlError(Exception):
    """A query Salesforce would reject; `error_code` is Salesforce's errorCode."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "order", "by", "asc", "desc", "nulls",
    "first", "last", "limit", "offset", "in", "like", "null", "true", "false", "count",
    "group", "having", "with", "for", "using", "scope", "includes", "excludes",
}  # fmt: skip

_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'",
                   "\\": "\\", "_": "\\_", "%": "\\%"}  # fmt: skip

NUMERIC_TYPES = {"currency", "double", "percent", "int"}
TEXT_TYPES = {"id", "string", "picklist", "reference", "email", "textarea", "phone", "url"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int  # 0-based offset in the query

    @property
    def lower(self) -> str:
        return self.text.lower()


@dataclass
class Literal:
    kind: str  # string | number | boolean | null | date | datetime
    value: Any
    pos: int


@dataclass
class Comparison:
    field: str  # as written; resolved by `translate`
    op: str  # = != < <= > >= like in notin
    values: list[Literal]
    pos: int


@dataclass
class BoolOp:
    op: str  # and | or | not
    args: list[Any]


@dataclass
class OrderItem:
    field: str
    descending: bool = False
    nulls_last: bool | None = None
    pos: int = 0


@dataclass
class Query:
    text: str
    object_name: str
    object_pos: int
    fields: list[tuple[str, int]] = field(default_factory=list)  # (name as written, position)
    count_only: bool = False
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def _error_at(text: str, pos: int, code: str, detail: str) -> SoqlError:
    """Salesforce's error layout: the query line, a caret, the row/column, then the detail."""
    line = " ".join(text.split("\n"))
    caret = " " * pos + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:1:Column:{pos + 1}\n{detail}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise _error_at(
                text, pos, MALFORMED_QUERY, f"unexpected token: '{text[pos : pos + 10]}'"
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def parse_datetime_literal(text: str) -> datetime:
    """2024-01-01T00:00:00Z / +00:00 / .000+0000 -> aware UTC datetime."""
    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):?(\d{2}))",
        text,
    )
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, zone, sign, oh, om = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    value = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    if zone != "Z":
        offset = timedelta(hours=int(oh), minutes=int(om))
        value = value - offset if sign == "+" else value + offset
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.lower in words

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise _error_at(self.text, len(self.text), MALFORMED_QUERY, "unexpected end of query")
        self.i += 1
        return tok

    def expect_keyword(self, word: str) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != "ident" or tok.lower != word:
            pos = tok.pos if tok else len(self.text)
            found = tok.text if tok else "end of query"
            raise _error_at(
                self.text,
                pos,
                MALFORMED_QUERY,
                f"unexpected token: '{found}', expected {word.upper()}",
            )
        return self.next()

    def expect_punct(self, char: str) -> Token:
        tok = self.peek()
        if tok is None or tok.text != char:
            pos = tok.pos if tok else len(self.text)
            found = tok.text if tok else "end of query"
            raise _error_at(self.text, pos, MALFORMED_QUERY, f"unexpected token: '{found}'")
        return self.next()

    def field_name(self) -> Token:
        tok = self.next()
        if tok.kind != "ident" or tok.lower in _KEYWORDS:
            raise _error_at(self.text, tok.pos, MALFORMED_QUERY, f"unexpected token: '{tok.text}'")
        if "." in tok.text:
            raise _error_at(
                self.text,
                tok.pos,
                MALFORMED_QUERY,
                f"relationship field '{tok.text}' is not supported by the salesops sandbox "
                "(query the related object separately)",
            )
        return tok

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_keyword("select")
        fields: list[tuple[str, int]] = []
        count_only = False
        tok = self.peek()
        if (
            tok is not None
            and tok.lower == "count"
            and self.peek(1) is not None
            and self.peek(1).text == "("  # type: ignore[union-attr]
        ):
            self.next()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            while True:
                tok = self.field_name()
                if self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                    raise _error_at(
                        self.text,
                        tok.pos,
                        MALFORMED_QUERY,
                        f"function '{tok.text}()' is not supported by the salesops sandbox",
                    )
                fields.append((tok.text, tok.pos))
                if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.next()
                    continue
                break
        self.expect_keyword("from")
        obj = self.next()
        if obj.kind != "ident" or obj.lower in _KEYWORDS or "." in obj.text:
            raise _error_at(self.text, obj.pos, MALFORMED_QUERY, f"unexpected token: '{obj.text}'")
        query = Query(self.text, obj.text, obj.pos, fields, count_only)
        if self.at_keyword("where"):
            self.next()
            query.where = self.parse_or()
        if self.at_keyword("order"):
            self.next()
            self.expect_keyword("by")
            while True:
                tok = self.field_name()
                item = OrderItem(tok.text, pos=tok.pos)
                if self.at_keyword("asc", "desc"):
                    item.descending = self.next().lower == "desc"
                if self.at_keyword("nulls"):
                    self.next()
                    if not self.at_keyword("first", "last"):
                        tok2 = self.peek()
                        raise _error_at(
                            self.text,
                            tok2.pos if tok2 else len(self.text),
                            MALFORMED_QUERY,
                            "expected FIRST or LAST after NULLS",
                        )
                    item.nulls_last = self.next().lower == "last"
                query.order_by.append(item)
                if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.next()
                    continue
                break
        if self.at_keyword("limit"):
            self.next()
            query.limit = self.non_negative_int("LIMIT")
        if self.at_keyword("offset"):
            self.next()
            query.offset = self.non_negative_int("OFFSET")
        tok = self.peek()
        if tok is not None:
            raise _error_at(self.text, tok.pos, MALFORMED_QUERY, f"unexpected token: '{tok.text}'")
        return query

    def non_negative_int(self, what: str) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise _error_at(
                self.text, tok.pos, MALFORMED_QUERY, f"{what} must be a non-negative integer"
            )
        return int(tok.text)

    def parse_or(self) -> Any:
        args = [self.parse_and()]
        while self.at_keyword("or"):
            self.next()
            args.append(self.parse_and())
        return args[0] if len(args) == 1 else BoolOp("or", args)

    def parse_and(self) -> Any:
        args = [self.parse_not()]
        while self.at_keyword("and"):
            self.next()
            args.append(self.parse_not())
        return args[0] if len(args) == 1 else BoolOp("and", args)

    def parse_not(self) -> Any:
        if self.at_keyword("not"):
            self.next()
            return BoolOp("not", [self.parse_not()])
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.next()
            inner = self.parse_or()
            self.expect_punct(")")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        ftok = self.field_name()
        tok = self.next()
        if tok.kind == "op":
            op = {"<>": "!="}.get(tok.text, tok.text)
            return Comparison(ftok.text, op, [self.literal()], ftok.pos)
        if tok.kind == "ident" and tok.lower == "like":
            return Comparison(ftok.text, "like", [self.literal()], ftok.pos)
        negate = False
        if tok.kind == "ident" and tok.lower == "not":
            negate = True
            tok = self.next()
        if tok.kind == "ident" and tok.lower == "in":
            self.expect_punct("(")
            values = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.next()
                values.append(self.literal())
            self.expect_punct(")")
            return Comparison(ftok.text, "notin" if negate else "in", values, ftok.pos)
        raise _error_at(self.text, tok.pos, MALFORMED_QUERY, f"unexpected token: '{tok.text}'")

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            return Literal("string", _unquote(tok.text), tok.pos)
        if tok.kind == "number":
            num = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            return Literal("number", num, tok.pos)
        if tok.kind == "date":
            try:
                return Literal("date", date.fromisoformat(tok.text), tok.pos)
            except ValueError as exc:
                raise _error_at(
                    self.text, tok.pos, MALFORMED_QUERY, f"invalid date: {tok.text}"
                ) from exc
        if tok.kind == "datetime":
            try:
                return Literal("datetime", parse_datetime_literal(tok.text), tok.pos)
            except ValueError as exc:
                raise _error_at(
                    self.text, tok.pos, MALFORMED_QUERY, f"invalid datetime: {tok.text}"
                ) from exc
        if tok.kind == "ident" and tok.lower in ("true", "false"):
            return Literal("boolean", tok.lower == "true", tok.pos)
        if tok.kind == "ident" and tok.lower == "null":
            return Literal("null", None, tok.pos)
        detail = f"unexpected token: '{tok.text}'"
        if tok.kind == "ident":
            detail += (
                " (date literals and bind variables are not supported by the salesops sandbox)"
            )
        raise _error_at(self.text, tok.pos, MALFORMED_QUERY, detail)


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _STRING_ESCAPES.get(m.group(1), m.group(1)), body)


def parse(text: str) -> Query:
    """Parse a SOQL query of the supported subset (object and fields not yet checked)."""
    if not text or not text.strip():
        raise SoqlError(MALFORMED_QUERY, "A query string is required (parameter q)")
    return _Parser(text).parse()


# -- translation -----------------------------------------------------------------------------


@dataclass
class Translated:
    object_name: str  # canonical SObject name
    fields: list[str]  # canonical field names, in SELECT order
    count_only: bool
    sql: str  # selects `fields` (+ "Id" as __sf_id when not selected) from the quoted table
    count_sql: str
    params: list[Any]
    simple: bool  # no WHERE/ORDER/LIMIT/OFFSET (the caller may take a zero-copy fast path)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def translate(
    query: Query,
    resolve_object: Callable[[str], str | None],
    field_types: Callable[[str], dict[str, str]],
    include_deleted: bool,
    table_sql: str | None = None,
) -> Translated:
    """Check `query` against the org and build DuckDB SQL.

    `resolve_object(name)` returns the canonical SObject name (case-insensitive) or None;
    `field_types(obj)` maps canonical field names to describe types. `table_sql` is the
    relation to read (default: the quoted object name).
    """
    text = query.text
    obj = resolve_object(query.object_name)
    if obj is None:
        raise _error_at(
            text,
            query.object_pos,
            INVALID_TYPE,
            f"sObject type '{query.object_name}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        )
    types = field_types(obj)
    by_lower = {name.lower(): name for name in types}

    def resolve_field(name: str, pos: int) -> str:
        canonical = by_lower.get(name.lower())
        if canonical is None:
            raise _error_at(
                text,
                pos,
                INVALID_FIELD,
                f"No such column '{name}' on entity '{obj}'. If you are attempting to use a custom "
                "field, be sure to append the '__c' after the custom field name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        return canonical

    fields: list[str] = []
    for name, pos in query.fields:
        canonical = resolve_field(name, pos)
        if canonical in fields:
            raise _error_at(text, pos, MALFORMED_QUERY, f"duplicate field selected: {canonical}")
        fields.append(canonical)

    params: list[Any] = []

    def cond_sql(node: Any) -> str:
        if isinstance(node, BoolOp):
            if node.op == "not":
                return f"(NOT {cond_sql(node.args[0])})"
            joiner = f" {node.op.upper()} "
            return "(" + joiner.join(cond_sql(a) for a in node.args) + ")"
        assert isinstance(node, Comparison)
        name = resolve_field(node.field, node.pos)
        ftype = types[name]
        col = _quote(name)
        for lit in node.values:
            _check_literal(text, name, ftype, lit, node.op)
        if node.op in ("in", "notin"):
            non_null = [lit for lit in node.values if lit.kind != "null"]
            has_null = len(non_null) < len(node.values)
            parts = []
            if non_null:
                placeholders = ", ".join(_placeholder(ftype, lit, params) for lit in non_null)
                target = f"lower({col})" if ftype in TEXT_TYPES else col
                parts.append(f"{target} IN ({placeholders})")
            if has_null:
                parts.append(f"{col} IS NULL")
            inner = "(" + " OR ".join(parts) + ")"
            if node.op == "notin":
                return f"(NOT coalesce({inner}, false))"
            return f"coalesce({inner}, false)"
        lit = node.values[0]
        if lit.kind == "null":
            if node.op not in ("=", "!="):
                raise _error_at(
                    text, lit.pos, MALFORMED_QUERY, "null can only be compared with = or !="
                )
            return f"({col} IS {'NOT ' if node.op == '!=' else ''}NULL)"
        if node.op == "like":
            params.append(lit.value)
            return f"coalesce({col} ILIKE ? ESCAPE '\\', false)"
        placeholder = _placeholder(ftype, lit, params)
        target = col
        if ftype in TEXT_TYPES:
            target = f"lower({col})"
        if node.op == "!=":
            # SOQL: field != 'x' is true for null fields.
            return f"({col} IS NULL OR {target} != {placeholder})"
        return f"coalesce({target} {node.op} {placeholder}, false)"

    where_parts = []
    if query.where is not None:
        where_parts.append(cond_sql(query.where))
    if not include_deleted and "IsDeleted" in types:
        where_parts.append('NOT coalesce("IsDeleted", false)')
    order_parts = []
    for item in query.order_by:
        name = resolve_field(item.field, item.pos)
        nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
        order_parts.append(
            f"{_quote(name)} {'DESC' if item.descending else 'ASC'} "
            f"NULLS {'LAST' if nulls_last else 'FIRST'}"
        )

    source = table_sql or _quote(obj)
    select_cols = [_quote(f) for f in fields]
    if "Id" not in fields and "Id" in types:
        select_cols.append('"Id" AS "__sf_id"')
    sql = f"SELECT {', '.join(select_cols) or '1'} FROM {source}"
    if where_parts:
        sql += " WHERE " + " AND ".join(where_parts)
    if order_parts:
        sql += " ORDER BY " + ", ".join(order_parts)
    tail = ""
    if query.limit is not None:
        tail += f" LIMIT {int(query.limit)}"
    if query.offset is not None:
        if query.limit is None:
            tail += " LIMIT 9223372036854775807"
        tail += f" OFFSET {int(query.offset)}"
    sql += tail
    count_sql = f"SELECT count(*) FROM (SELECT 1 FROM {source}"
    if where_parts:
        count_sql += " WHERE " + " AND ".join(where_parts)
    count_sql += tail + ")"
    simple = query.where is None and not query.order_by and not tail
    return Translated(obj, fields, query.count_only, sql, count_sql, params, simple)


def _placeholder(ftype: str, lit: Literal, params: list[Any]) -> str:
    if lit.kind == "datetime":
        params.append(lit.value.isoformat())
        return "CAST(? AS TIMESTAMPTZ)"
    if lit.kind == "date":
        params.append(lit.value.isoformat())
        return "CAST(? AS DATE)"
    if lit.kind == "string" and ftype in TEXT_TYPES:
        params.append(lit.value.lower())
        return "?"
    params.append(lit.value)
    return "?"


_EXPECTED = {
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
}


def _check_literal(text: str, name: str, ftype: str, lit: Literal, op: str) -> None:
    if lit.kind == "null":
        return
    if op == "like":
        if lit.kind != "string" or ftype not in TEXT_TYPES:
            raise _error_at(
                text,
                lit.pos,
                INVALID_FIELD,
                f"invalid operator on field '{name}': LIKE needs a text field and a quoted string",
            )
        return
    if ftype in TEXT_TYPES:
        ok = lit.kind == "string"
    elif ftype in NUMERIC_TYPES:
        ok = lit.kind == "number"
    elif ftype in _EXPECTED:
        ok = lit.kind == _EXPECTED[ftype]
    else:
        ok = True
    if not ok:
        quoted = (
            "should be enclosed in quotes"
            if ftype in TEXT_TYPES
            else ("should not be enclosed in quotes")
        )
        raise _error_at(
            text,
            lit.pos,
            INVALID_FIELD,
            f"value of filter criterion for field '{name}' must be of type {ftype} and {quoted}",
        )
