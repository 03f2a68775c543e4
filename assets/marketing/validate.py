"""Row validation in DuckDB SQL: staged VARCHAR rows -> typed rows with a quarantine reason.

`classify(con, kind, salt)` reads temp table `mkt_stage` (see reader.py) and creates temp table
`mkt_classified`: `line`, the target table's typed columns and, for bad rows, `reason` (a stable
code from contract.py) and `detail` (human text naming the column and value).
`quarantine_rows_sql(kind)` selects the bad rows with the raw row as JSON. Rules are checked in
order and the first failing one names the reason; `reason IS NULL` means the row loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from assets.marketing import contract as c
from assets.marketing.reader import EMAIL_PATTERN, STAGE, sql_literal

CLASSIFIED = "mkt_classified"

# A time of day followed by an explicit offset: Z, +hh, +hhmm or +hh:mm.
_OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$"
_EMAIL_SHAPE = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_MAX_COUNT = 9.2e18  # BIGINT range


@dataclass(frozen=True)
class Rule:
    failed: str  # SQL condition, true when the row breaks the rule
    reason: str
    detail: str  # SQL expression for the human-readable detail


def _quote(column: str) -> str:
    """SQL text rendering a raw value in a detail message: 'value'."""
    return f"'''' || {column}_v || ''''"


def _missing(columns: tuple[str, ...]) -> list[Rule]:
    return [
        Rule(f"{col}_v IS NULL", c.REASON_MISSING_VALUE, sql_literal(f"{col} is empty"))
        for col in columns
    ]


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


def _count_rule(column: str) -> Rule:
    d = f"{column}_d"
    ok = f"isfinite({d}) AND {d} >= 0 AND {d} = floor({d}) AND {d} < {_MAX_COUNT}"
    return Rule(
        f"{column}_v IS NOT NULL AND NOT coalesce({ok}, false)",
        c.REASON_INVALID_COUNT,
        f"'{column} ' || {_quote(column)} || ' is not a non-negative whole number'",
    )


def _ad_spend_rules() -> list[Rule]:
    spec = c.SPECS[c.AD_SPEND]
    return [
        *_missing(spec.required_values),
        Rule(
            "date_t IS NULL",
            c.REASON_INVALID_DATE,
            f"'date ' || {_quote('date')} || ' is not a valid YYYY-MM-DD date'",
        ),
        Rule(
            f"channel_t NOT IN {_in_list(c.CHANNELS)}",
            c.REASON_UNKNOWN_CHANNEL,
            f"'channel ' || {_quote('channel')} || ' is not a known channel'",
        ),
        Rule(
            "spend_t IS NULL",
            c.REASON_INVALID_SPEND,
            f"'spend ' || {_quote('spend')} || ' is not a number'",
        ),
        Rule(
            "spend_t < 0",
            c.REASON_NEGATIVE_SPEND,
            f"'spend ' || {_quote('spend')} || ' is negative'",
        ),
        Rule(
            "NOT regexp_full_match(currency_t, '[A-Z]{3}')",
            c.REASON_INVALID_CURRENCY,
            f"'currency ' || {_quote('currency')} || ' is not a 3-letter ISO code'",
        ),
        _count_rule("impressions"),
        _count_rule("clicks"),
    ]


def _touchpoint_rules() -> list[Rule]:
    spec = c.SPECS[c.TOUCHPOINTS]
    return [
        *_missing(spec.required_values),
        Rule(
            "occurred_tz IS NULL",
            c.REASON_INVALID_TIMESTAMP,
            f"'occurred_at ' || {_quote('occurred_at')} || ' is not an ISO 8601 timestamp'",
        ),
        Rule(
            f"NOT regexp_matches(occurred_at_v, {sql_literal(_OFFSET_PATTERN)})",
            c.REASON_MISSING_UTC_OFFSET,
            f"'occurred_at ' || {_quote('occurred_at')} || ' has no UTC offset (add Z or +hh:mm)'",
        ),
        Rule(
            f"channel_t NOT IN {_in_list(c.CHANNELS)}",
            c.REASON_UNKNOWN_CHANNEL,
            f"'channel ' || {_quote('channel')} || ' is not a known channel'",
        ),
        Rule(
            f"touch_type_t NOT IN {_in_list(c.TOUCH_TYPES)}",
            c.REASON_UNKNOWN_TOUCH_TYPE,
            f"'touch_type ' || {_quote('touch_type')} || ' is not a known touch type'",
        ),
        Rule(
            f"email_v IS NOT NULL AND NOT regexp_full_match(email_v, {sql_literal(_EMAIL_SHAPE)})",
            c.REASON_INVALID_EMAIL,
            "'email is not a valid address (value redacted)'",
        ),
    ]


def _first_failed(rules: list[Rule]) -> str:
    """CASE giving the number of the first failing rule (NULL if the row passes all)."""
    whens = " ".join(f"WHEN {r.failed} THEN {n}" for n, r in enumerate(rules, 1))
    return f"CASE {whens} END"


def _by_rule(rules: list[Rule], attr: str) -> str:
    """The reason code (attr="reason") or detail text of rule number `rule_no`.

    Each rule's condition is evaluated once (in `_first_failed`); details are only built for the
    rows that failed.
    """
    if attr == "reason":
        whens = " ".join(f"WHEN {n} THEN {sql_literal(r.reason)}" for n, r in enumerate(rules, 1))
    else:
        whens = " ".join(f"WHEN {n} THEN {r.detail}" for n, r in enumerate(rules, 1))
    return f"CASE rule_no {whens} END"


# Free-text columns: an email address typed into them is replaced by the redaction marker.
_FREE_TEXT = ("campaign", "utm_source", "utm_medium", "utm_campaign")


def _trimmed(columns: tuple[str, ...]) -> str:
    parts = []
    for col in columns:
        value = f"nullif(trim(\"{col}\"), '')"
        if col in _FREE_TEXT:  # contains() is cheap; the regex runs only on candidates
            value = f"CASE WHEN contains(\"{col}\", '@') THEN mkt_redact({value}) ELSE {value} END"
        parts.append(f"{value} AS {col}_v")
    return ", ".join(parts)


def quarantine_rows_sql(kind: str) -> str:
    """SELECT (line, reason, detail, raw_row) of the bad rows of mkt_classified.

    raw_row is the row as read (from mkt_stage), as JSON: the email is replaced by a marker and
    its salted hash, and anything shaped like an address elsewhere is redacted.
    """
    pairs = []
    for col in c.SPECS[kind].columns:
        if col == "email":
            pairs.append(f"'email', CASE WHEN s.email IS NOT NULL THEN '{c.REDACTED}' END")
            pairs.append("'email_hash', k.email_hash")
        else:
            pairs.append(f'{sql_literal(col)}, s."{col}"')
    raw = f"mkt_redact(CAST(json_object({', '.join(pairs)}) AS VARCHAR))"
    return (
        f"SELECT k.line, k.reason, k.detail, {raw} AS raw_row "
        f"FROM {CLASSIFIED} k JOIN {STAGE} s ON s.line = k.line WHERE k.reason IS NOT NULL"
    )


def create_redact_macro(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP MACRO mkt_redact(x) AS "
        f"regexp_replace(x, {sql_literal(EMAIL_PATTERN)}, '{c.REDACTED}', 'g')"
    )


def classify(con: duckdb.DuckDBPyConnection, kind: str, salt: str) -> None:
    """Create temp table mkt_classified from mkt_stage (see module doc)."""
    create_redact_macro(con)
    spec = c.SPECS[kind]
    con.execute(f"DROP TABLE IF EXISTS {CLASSIFIED}")
    if kind == c.AD_SPEND:
        _classify_ad_spend(con, spec)
    elif kind == c.TOUCHPOINTS:
        _classify_touchpoints(con, spec, salt)
    else:
        raise ValueError(f"unknown marketing file kind {kind!r}; expected one of {c.KINDS}")


def _classify_ad_spend(con: duckdb.DuckDBPyConnection, spec: c.KindSpec) -> None:
    rules = _ad_spend_rules()
    con.execute(
        f"""
        CREATE TEMP TABLE {CLASSIFIED} AS
        WITH v AS (
            SELECT line, {_trimmed(spec.columns)} FROM {STAGE}
        ),
        t AS (
            SELECT *,
                try_cast(date_v AS DATE) AS date_t,
                lower(channel_v) AS channel_t,
                try_cast(spend_v AS DECIMAL(18, 4)) AS spend_t,
                upper(currency_v) AS currency_t,
                try_cast(impressions_v AS DOUBLE) AS impressions_d,
                try_cast(clicks_v AS DOUBLE) AS clicks_d
            FROM v
        ),
        numbered AS (
            SELECT *, {_first_failed(rules)} AS rule_no FROM t
        ),
        checked AS (
            SELECT *, {_by_rule(rules, "reason")} AS reason, {_by_rule(rules, "detail")} AS detail
            FROM numbered
        )
        SELECT
            line,
            date_t AS date,
            channel_t AS channel,
            campaign_v AS campaign,
            spend_t AS spend,
            currency_t AS currency,
            CASE WHEN reason IS NULL THEN CAST(impressions_d AS BIGINT) END AS impressions,
            CASE WHEN reason IS NULL THEN CAST(clicks_d AS BIGINT) END AS clicks,
            reason,
            mkt_redact(detail) AS detail
        FROM checked
        """
    )


def _classify_touchpoints(con: duckdb.DuckDBPyConnection, spec: c.KindSpec, salt: str) -> None:
    rules = _touchpoint_rules()
    target = f"{c.SCHEMA}.{c.TOUCHPOINTS}"
    # Duplicates: among rows passing every other rule, the first occurrence of a touchpoint_id
    # in this file loads unless another file already loaded that id; the others are quarantined.
    # The target holds unique ids (this rule), so the join adds no rows; the loader's
    # read = loaded + quarantined check would catch it if it ever did.
    con.execute(
        f"""
        CREATE TEMP TABLE {CLASSIFIED} AS
        WITH v AS (
            SELECT line, {_trimmed(spec.columns)} FROM {STAGE}
        ),
        t AS (
            SELECT *,
                try_cast(occurred_at_v AS TIMESTAMPTZ) AS occurred_tz,
                lower(channel_v) AS channel_t,
                lower(touch_type_v) AS touch_type_t,
                CASE WHEN email_v IS NOT NULL THEN sha256(? || lower(email_v)) END AS email_hash
            FROM v
        ),
        numbered AS (
            SELECT *, {_first_failed(rules)} AS rule_no FROM t
        ),
        checked AS (
            SELECT *, {_by_rule(rules, "reason")} AS reason0, {_by_rule(rules, "detail")} AS detail0
            FROM numbered
        ),
        firsts AS (
            SELECT touchpoint_id_v AS first_id, min(line) AS first_line
            FROM checked WHERE reason0 IS NULL GROUP BY touchpoint_id_v
        ),
        final AS (
            SELECT r.*,
                coalesce(
                    reason0,
                    CASE WHEN e.touchpoint_id IS NOT NULL OR r.line > f.first_line
                        THEN '{c.REASON_DUPLICATE_ID}' END
                ) AS reason,
                coalesce(
                    detail0,
                    CASE
                        WHEN e.touchpoint_id IS NOT NULL THEN
                            'touchpoint_id ' || {_quote("touchpoint_id")}
                            || ' was already loaded from ' || e.source_file
                            || ' line ' || e.source_line
                        WHEN r.line > f.first_line THEN
                            'touchpoint_id ' || {_quote("touchpoint_id")}
                            || ' repeats line ' || first_line || ' of this file'
                    END
                ) AS detail
            FROM checked r
            LEFT JOIN firsts f ON r.reason0 IS NULL AND f.first_id = r.touchpoint_id_v
            LEFT JOIN {target} e
                ON r.reason0 IS NULL AND e.touchpoint_id = r.touchpoint_id_v
        )
        SELECT
            line,
            touchpoint_id_v AS touchpoint_id,
            CASE WHEN reason IS NULL THEN timezone('UTC', occurred_tz) END AS occurred_at,
            channel_t AS channel,
            campaign_v AS campaign,
            touch_type_t AS touch_type,
            email_hash,
            utm_source_v AS utm_source,
            utm_medium_v AS utm_medium,
            utm_campaign_v AS utm_campaign,
            reason,
            mkt_redact(detail) AS detail
        FROM final
        """,
        [salt],
    )
