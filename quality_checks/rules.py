"""The quality rules, built in code from the Salesforce contract (`sandbox.schema`).

A `TableSpec` is one table's suite: the rows that count (live rows: `is_deleted` false or null)
and a list of `Rule`s. A rule is defined once and evaluated two ways that must agree:

* as a Great Expectations expectation (`Rule.kind` + `Rule.gx_args`, built in `gx_engine`), and
* as a SQL predicate over the live rows (`Rule.fail_sql` true when a row fails, `Rule.check_sql`
  true when the rule applies to the row), used for the row-level score, failing samples and the
  quarantine, and by the SQL-only engine.

Pure data: no Great Expectations or Dagster import here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from sandbox.schema import (
    CURRENCY,
    DATE,
    DATETIME,
    INT,
    MARKETING_CHANNELS,
    OBJECTS,
    PERCENT,
    PICKLIST,
    REFERENCE,
    TOUCH_TYPES,
    SObject,
    snake,
)

# Dimensions, in display order.
COMPLETENESS = "completeness"
VALIDITY = "validity"
UNIQUENESS = "uniqueness"
INTEGRITY = "integrity"
CONSISTENCY = "consistency"
FRESHNESS = "freshness"
DIMENSIONS = (COMPLETENESS, VALIDITY, UNIQUENESS, INTEGRITY, CONSISTENCY, FRESHNESS)

# Rule kinds (each maps to one GX expectation type, see gx_engine.GX_TYPES).
NOT_NULL = "not_null"
IN_SET = "in_set"
BETWEEN = "between"
UNIQUE = "unique"
ROWS = "unexpected_rows"  # custom SQL: GX UnexpectedRowsExpectation
FRESH = "freshness"  # GX ExpectColumnMaxToBeBetween

# Fields the marts need filled although Salesforce lets them be null (nillable in describe).
BUSINESS_REQUIRED: dict[str, tuple[str, ...]] = {
    "Opportunity": ("AccountId",),
    "Account": ("Industry",),
    "Contact": ("Email",),
    "Lead": ("LeadSource",),
}
# Fields never checked for plausibility: Salesforce stores open-ended ranges as 9999-12-31.
NO_PLAUSIBILITY: frozenset[tuple[str, str]] = frozenset({("DatedConversionRate", "NextStartDate")})
# Polymorphic references (WhoId -> Lead|Contact, WhatId -> many) have no single parent table.
# Freshness windows per table (a table-level WARN finding, never a row failure): the newest
# row must be younger than the window at as_of. The weekly run needs windows of at least a week
# plus a day of slack; objects that change with every sales week get 8 days, objects that only
# change when the business restructures get 35 days, reference data (users, roles, products,
# currencies, quotas) none. Keys: Salesforce API names or marketing table labels.
WEEKLY = dt.timedelta(days=8)
MONTHLY = dt.timedelta(days=35)
FRESHNESS_WINDOWS: dict[str, dt.timedelta] = {
    "Opportunity": WEEKLY,
    "OpportunityHistory": WEEKLY,
    "Lead": WEEKLY,
    "Task": WEEKLY,
    "Event": WEEKLY,
    "Account": MONTHLY,
    "Contact": MONTHLY,
    "Campaign": MONTHLY,
    "CampaignMember": MONTHLY,
    "OpportunityContactRole": MONTHLY,
    "OpportunityLineItem": MONTHLY,
    "marketing.ad_spend": WEEKLY,
    "marketing.touchpoints": WEEKLY,
}
# Kept for callers that list the objects with a freshness rule.
FRESHNESS_OBJECTS: tuple[str, ...] = tuple(k for k in FRESHNESS_WINDOWS if "." not in k)
# dlt's per-load column: merge on Id gives every new or changed row the id of the load.
DLT_LOAD_ID = "_dlt_load_id"
# Marketing rows: a file's rows are replaced as a whole, and come back with a new loaded_at.
FILE_LOAD_ID = (
    "coalesce(\"source_file\", '') || '@' || coalesce(CAST(\"loaded_at\" AS VARCHAR), '')"
)
FILE_ROW_KEY = (
    "coalesce(\"source_file\", '') || ':' || coalesce(CAST(\"source_line\" AS VARCHAR), '')"
)
FILE_COLUMNS = ("source_file", "source_line", "loaded_at")
# Soft duplicate-person detection (same e-mail, different Id).
DUPLICATE_PERSON_OBJECTS: tuple[str, ...] = ("Contact", "Lead")


@dataclass(frozen=True)
class QualityConfig:
    """Knobs of a validation run. `as_of` is the run's reference time (UTC)."""

    as_of: dt.datetime
    gate: float = 0.98
    # One window for every table that has one (env SALESOPS_QUALITY_FRESHNESS_DAYS); None: the
    # per-table `freshness_windows`.
    freshness_max_age: dt.timedelta | None = None
    freshness_windows: dict[str, dt.timedelta] | None = None
    earliest_date: dt.date = dt.date(2000, 1, 1)
    # How far past as_of a date field may lie (close dates, quotas, campaign ends).
    future_horizon: dt.timedelta = dt.timedelta(days=5 * 366)
    # Audit timestamps may not be later than as_of + this (clock skew).
    clock_skew: dt.timedelta = dt.timedelta(days=1)
    sample_per_rule: int = 5
    sample_max: int = 50
    # Picklist values per (object API name, field API name); default: sandbox.schema. In a live
    # run pass the org's describe (see `picklists_from_describe`).
    picklists: dict[tuple[str, str], tuple[str, ...]] | None = None
    # Only live rows count; parents referenced must be live too.
    parents_must_be_live: bool = True
    # GX engine: also re-evaluate in SQL the rules GX found clean (slower; see validate.py).
    recheck_clean_rules: bool = False
    # Evaluate only the rows of new loads when the last evaluation's state allows (incremental.py)
    incremental: bool = True

    def freshness_window(self, key: str) -> dt.timedelta | None:
        """The freshness window of a table (API name or marketing label); None: no rule."""
        windows = FRESHNESS_WINDOWS if self.freshness_windows is None else self.freshness_windows
        if key not in windows:
            return None
        return self.freshness_max_age if self.freshness_max_age is not None else windows[key]

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ValueError("QualityConfig.as_of must be timezone-aware (UTC)")
        if not 0 < self.gate <= 1:
            raise ValueError(f"QualityConfig.gate must be in (0, 1], got {self.gate}")


@dataclass(frozen=True)
class Rule:
    """One expectation on one table.

    `fail_sql` / `check_sql` are SQL boolean expressions over the live rows of the table, with
    column names unqualified. They never yield NULL (callers wrap them in coalesce anyway).
    """

    name: str
    dimension: str
    kind: str
    column: str | None
    fail_sql: str
    check_sql: str = "true"
    hard: bool = False
    soft: bool = False  # informational finding (WARN), still counted in the score
    gx_args: dict = field(default_factory=dict)
    reason_sql: str = "'failed'"
    description: str = ""
    # (schema, table) another table the rule reads (a foreign key's parent); skipped if absent.
    needs_table: tuple[str, str] | None = None
    # Window rules: the expression of the partition a row's result depends on (incremental
    # evaluation re-evaluates whole partitions). None for other rules.
    partition_sql: str | None = None
    # The rule's SQL depends on as_of only through an upper bound that grows with as_of, so a
    # row that passed stays passing when as_of moves forward (plausible-date rules).
    as_of_bound: bool = False
    # Foreign keys: the parent rows that count (SQL over the parent's columns, e.g. its live
    # filter). Incremental evaluation: only parent rows outside it can break unchanged children.
    parent_live: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table's suite."""

    object: str  # Salesforce API name, or "<schema>.<table>" for non-Salesforce tables
    schema: str
    table: str
    id_column: str
    rules: tuple[Rule, ...]
    live_filter: str = "true"
    # Expression that identifies a row for samples and quarantine (default: the id column).
    record_id_sql: str | None = None
    # Hard-rule failures go to quality.quarantine_ids (False: hard rules must hold on every row).
    quarantine: bool = True
    # Incremental evaluation: the load a row came with (dlt's _dlt_load_id; a marketing file's
    # name + load time) and a key that finds the row again (None: always evaluated in full).
    load_id_sql: str | None = None
    row_key_sql: str | None = None
    load_columns: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def record_id(self) -> str:
        return self.record_id_sql or quote(self.id_column)

    @property
    def row_key(self) -> str:
        return self.row_key_sql or self.record_id

    def source_query(self) -> str:
        """The live rows: what every rule and GX see (`SELECT ...` so GX accepts it)."""
        return f"SELECT * FROM {self.qualified} WHERE {self.live_filter}"

    def with_rules(self, rules: list[Rule] | tuple[Rule, ...]) -> TableSpec:
        return dataclasses.replace(self, rules=tuple(rules))

    def columns_used(self, rule: Rule) -> set[str]:
        return set(rule.gx_args.get("_columns", ())) | ({rule.column} if rule.column else set())


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def lit(value: object) -> str:
    """A SQL literal for a str/number/date/datetime."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime) and value.tzinfo is None:  # naive = UTC wall time
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"cannot render {value!r} as SQL")


def _str(col: str) -> str:
    """A reason fragment showing the value (NULL-safe)."""
    return f"coalesce(CAST({quote(col)} AS VARCHAR), 'NULL')"


# ---------------------------------------------------------------------------------------------
# rule builders (one per rule kind)


def not_null(table: str, col: str, api: str) -> Rule:
    return Rule(
        name=f"{table}.{col}.not_null",
        dimension=COMPLETENESS,
        kind=NOT_NULL,
        column=col,
        fail_sql=f"{quote(col)} IS NULL",
        reason_sql=lit(f"{api} is empty"),
        description=f"{api} is filled",
    )


def in_set(table: str, col: str, api: str, values: tuple[str, ...]) -> Rule:
    vals = ", ".join(lit(v) for v in values)
    return Rule(
        name=f"{table}.{col}.in_set",
        dimension=VALIDITY,
        kind=IN_SET,
        column=col,
        fail_sql=f"{quote(col)} IS NOT NULL AND {quote(col)} NOT IN ({vals})",
        check_sql=f"{quote(col)} IS NOT NULL",
        gx_args={"value_set": list(values)},
        reason_sql=f"{lit(api + ' value ')} || {_str(col)} || ' is not in the picklist'",
        description=f"{api} in picklist ({len(values)} values)",
    )


def between(
    table: str,
    col: str,
    api: str,
    lo: object | None,
    hi: object | None,
    suffix: str,
    as_of_bound: bool = False,
) -> Rule:
    conds = []
    if lo is not None:
        conds.append(f"{quote(col)} < {lit(lo)}")
    if hi is not None:
        conds.append(f"{quote(col)} > {lit(hi)}")
    bounds = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else '+inf'}]"
    return Rule(
        name=f"{table}.{col}.{suffix}",
        dimension=VALIDITY,
        kind=BETWEEN,
        column=col,
        fail_sql=f"{quote(col)} IS NOT NULL AND ({' OR '.join(conds)})",
        check_sql=f"{quote(col)} IS NOT NULL",
        gx_args={"min_value": lo, "max_value": hi},
        reason_sql=f"{lit(api + ' = ')} || {_str(col)} || {lit(' outside ' + bounds)}",
        description=f"{api} within {bounds}",
        as_of_bound=as_of_bound,
    )


def unique_id(spec_qualified: str, live: str, table: str, col: str, hard: bool = True) -> Rule:
    q = quote(col)
    return Rule(
        name=f"{table}.{col}.unique",
        dimension=UNIQUENESS,
        kind=UNIQUE,
        column=col,
        fail_sql=(
            f"{q} IS NOT NULL AND {q} IN (SELECT {q} FROM {spec_qualified} WHERE {live} "
            f"GROUP BY {q} HAVING count(*) > 1)"
        ),
        check_sql=f"{q} IS NOT NULL",
        hard=hard,
        reason_sql=f"'duplicate Id ' || {_str(col)}",
        description="Id is unique",
        partition_sql=q,
    )


def references_fail_sql(
    col: str, parent: tuple[str, str], parent_live: str, values_from: str | None = None
) -> str:
    """`col` is set and no live parent row has that Id.

    `values_from`: a (small) table holding every row the rule is evaluated on; the parent's Ids
    are then read only for the values that occur there (same result on those rows: a value
    tested is always among them), so no hash of every parent Id is built.
    """
    q = quote(col)
    parent_qualified = f"{quote(parent[0])}.{quote(parent[1])}"
    subq = f'SELECT "id" FROM {parent_qualified} WHERE "id" IS NOT NULL AND {parent_live}'
    if values_from:
        subq += f' AND "id" IN (SELECT {q} FROM {values_from})'
    return f"{q} IS NOT NULL AND {q} NOT IN ({subq})"


def references(
    table: str, col: str, api: str, parent: tuple[str, str], parent_live: str, parent_api: str
) -> Rule:
    q = quote(col)
    fail = references_fail_sql(col, parent, parent_live)
    return Rule(
        name=f"{table}.{col}.references_{snake(parent_api)}",
        dimension=INTEGRITY,
        kind=ROWS,
        column=col,
        fail_sql=fail,
        check_sql=f"{q} IS NOT NULL",
        hard=True,
        gx_args={"_columns": [col]},
        reason_sql=f"{lit(api + ' ')} || {_str(col)} || {lit(' not found in ' + parent_api)}",
        description=f"{api} references an existing {parent_api}",
        needs_table=parent,
        parent_live=parent_live,
    )


def duplicate_person(table: str, email_col: str, api: str) -> Rule:
    """Soft: a later-created row with the same e-mail as an earlier one (case/space-insensitive).

    Only the later copies fail (the first record of a person is the one to keep).
    """
    key = f"lower(trim({quote(email_col)}))"
    rn = f'row_number() OVER (PARTITION BY {key} ORDER BY "created_date", "id")'
    return Rule(
        name=f"{table}.{email_col}.duplicate_person",
        dimension=UNIQUENESS,
        kind=ROWS,
        column=email_col,
        fail_sql=f"{quote(email_col)} IS NOT NULL AND {rn} > 1",
        check_sql=f"{quote(email_col)} IS NOT NULL",
        soft=True,
        gx_args={"_window": True, "_columns": [email_col, "created_date", "id"]},
        reason_sql=f"{lit('same ' + api + ' as an earlier record: ')} || {_str(email_col)}",
        description=f"no other earlier {table} with the same {api}",
        partition_sql=key,
    )


def custom(
    table: str,
    name: str,
    dimension: str,
    fail_sql: str,
    description: str,
    columns: list[str],
    check_sql: str = "true",
    column: str | None = None,
) -> Rule:
    return Rule(
        name=f"{table}.{name}",
        dimension=dimension,
        kind=ROWS,
        column=column,
        fail_sql=fail_sql,
        check_sql=check_sql,
        gx_args={"_columns": columns},
        reason_sql=lit(description + " violated"),
        description=description,
    )


def freshness(
    table: str,
    col: str,
    api: str,
    threshold: dt.datetime | dt.date,
    qualified: str,
    live: str,
    window: dt.timedelta | None = None,
):
    """Table-level: max(col) over the live rows >= threshold (as_of - the table's window).

    Not a row rule: a stale table is a WARN finding (checked 1, failed 1) and never changes the
    row-weighted score. `fail_sql` is the table-level condition (true when stale); the SQL engine
    evaluates it once per table, GX as ExpectColumnMaxToBeBetween on a one-row `max(col)` asset.
    `threshold` must be of the column's Python type (GX compares the column's max with it in
    Python): tz-aware for TIMESTAMPTZ, naive UTC for TIMESTAMP, a date for DATE columns.
    """
    shown = (
        threshold.isoformat(timespec="minutes")
        if isinstance(threshold, dt.datetime)
        else threshold.isoformat()
    )
    days = f" ({window.total_seconds() / 86400:g} d window)" if window is not None else ""
    return Rule(
        name=f"{table}.{col}.fresh",
        dimension=FRESHNESS,
        kind=FRESH,
        column=col,
        fail_sql=(
            f"coalesce((SELECT max({quote(col)}) FROM {qualified} WHERE {live}) "
            f"< {lit(threshold)}, true)"
        ),
        gx_args={"min_value": threshold},
        reason_sql=lit(f"newest {api} older than {threshold.isoformat()}"),
        description=f"max({api}) >= {shown}{days}",
    )


# ---------------------------------------------------------------------------------------------
# suites


def picklists_from_describe(describes: dict[str, dict]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Picklist values from Salesforce `describe` results ({object: describe JSON})."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for obj, desc in describes.items():
        for f in desc.get("fields", []):
            if f.get("type") == "picklist":
                vals = tuple(v["value"] for v in f.get("picklistValues", []) if v.get("active", 1))
                out[(obj, f["name"])] = vals
    return out


def _live_filter(sobj: SObject) -> str:
    return 'NOT coalesce("is_deleted", false)' if sobj.deletable else "true"


def salesforce_spec(sobj: SObject, config: QualityConfig, schema: str = "salesforce") -> TableSpec:
    """The suite for one raw Salesforce table."""
    table = snake(sobj.name)
    qualified = f"{quote(schema)}.{quote(table)}"
    live = _live_filter(sobj)
    as_of = config.as_of
    rules: list[Rule] = []
    required = set(BUSINESS_REQUIRED.get(sobj.name, ()))
    for f in sobj.fields:
        col = snake(f.name)
        api = f"{sobj.name}.{f.name}"
        if f.name == "IsDeleted":
            continue
        if not f.nillable or f.name in required:
            rules.append(not_null(table, col, api))
        if f.type == PICKLIST:
            values = (config.picklists or {}).get((sobj.name, f.name), f.picklist)
            if values:
                rules.append(in_set(table, col, api, tuple(values)))
        elif f.type in (CURRENCY, INT) or (f.type == "double" and f.name == "Quantity"):
            rules.append(between(table, col, api, 0, None, "non_negative"))
        elif f.type == PERCENT:
            rules.append(between(table, col, api, 0, 100, "percent_range"))
        elif f.type == DATE and (sobj.name, f.name) not in NO_PLAUSIBILITY:
            hi = (as_of + config.future_horizon).date()
            rules.append(
                between(table, col, api, config.earliest_date, hi, "plausible", as_of_bound=True)
            )
        elif f.type == DATETIME:
            lo = dt.datetime.combine(config.earliest_date, dt.time(), dt.UTC)
            skew = (
                config.clock_skew
                if f.name in ("CreatedDate", "LastModifiedDate", "SystemModstamp")
                else config.future_horizon
            )
            rules.append(between(table, col, api, lo, as_of + skew, "plausible", True))
        elif f.type == REFERENCE and f.reference_to:
            parent = OBJECTS[f.reference_to]
            rules.append(
                references(
                    table,
                    col,
                    api,
                    (schema, snake(parent.name)),
                    _live_filter(parent) if config.parents_must_be_live else "true",
                    parent.name,
                )
            )
    rules.append(unique_id(qualified, live, table, "id"))
    if sobj.name in DUPLICATE_PERSON_OBJECTS:
        rules.append(duplicate_person(table, "email", f"{sobj.name}.Email"))
    if sobj.name == "Opportunity":
        rules.append(
            custom(
                table,
                "is_won_implies_is_closed",
                CONSISTENCY,
                'coalesce("is_won", false) AND NOT coalesce("is_closed", false)',
                "IsWon implies IsClosed",
                ["is_won", "is_closed"],
            )
        )
        rules.append(
            custom(
                table,
                "close_date_after_created",
                CONSISTENCY,
                '"close_date" < CAST("created_date" AS DATE)',
                "CloseDate on or after CreatedDate",
                ["close_date", "created_date"],
                check_sql='"close_date" IS NOT NULL AND "created_date" IS NOT NULL',
                column="close_date",
            )
        )
    window = config.freshness_window(sobj.name)
    if window is not None:
        rules.append(
            freshness(
                table,
                "system_modstamp",
                f"{sobj.name}.SystemModstamp",
                as_of - window,
                qualified,
                live,
                window,
            )
        )
    return TableSpec(
        sobj.name,
        schema,
        table,
        "id",
        tuple(rules),
        live,
        load_id_sql=quote(DLT_LOAD_ID),
        load_columns=(DLT_LOAD_ID,),
    )


def salesforce_specs(config: QualityConfig, schema: str = "salesforce") -> list[TableSpec]:
    return [salesforce_spec(o, config, schema) for o in OBJECTS.values()]


def marketing_specs(config: QualityConfig, schema: str = "marketing") -> list[TableSpec]:
    """Suites for the loaded marketing tables (contract in /work/shared contracts)."""
    try:
        from sandbox.marketing import CHANNELS  # the simulator's list, when present

        channels = tuple(CHANNELS)
    except ImportError:
        channels = MARKETING_CHANNELS
    as_of = config.as_of
    hi_date = as_of.date() + dt.timedelta(days=1)
    ad_q = f"{quote(schema)}.{quote('ad_spend')}"
    ad_rules = [
        *(
            not_null("ad_spend", c, f"ad_spend.{c}")
            for c in ("date", "channel", "campaign", "spend", "currency")
        ),
        in_set("ad_spend", "channel", "ad_spend.channel", channels),
        between("ad_spend", "spend", "ad_spend.spend", 0, None, "non_negative"),
        between(
            "ad_spend", "date", "ad_spend.date", config.earliest_date, hi_date, "plausible", True
        ),
    ]
    ad_rules.append(
        Rule(
            name="ad_spend.date_channel_campaign.unique",
            dimension=UNIQUENESS,
            kind=ROWS,
            column=None,
            fail_sql='count(*) OVER (PARTITION BY "date", "channel", "campaign", "currency") > 1',
            soft=True,
            partition_sql='hash("date", "channel", "campaign", "currency")',
            gx_args={"_window": True, "_columns": ["date", "channel", "campaign", "currency"]},
            reason_sql="'more than one row for this date, channel, campaign and currency'",
            description="one row per date, channel, campaign, currency",
        )
    )
    ad_window = config.freshness_window("marketing.ad_spend")
    if ad_window is not None:
        ad_rules.append(
            freshness(
                "ad_spend",
                "date",
                "ad_spend.date",
                (as_of - ad_window - dt.timedelta(days=1)).astimezone(dt.UTC).date(),
                ad_q,
                "true",
                ad_window,
            )
        )
    tp_q = f"{quote(schema)}.{quote('touchpoints')}"
    tp_rules = [
        *(
            not_null("touchpoints", c, f"touchpoints.{c}")
            for c in ("touchpoint_id", "occurred_at", "channel", "touch_type")
        ),
        in_set("touchpoints", "channel", "touchpoints.channel", channels),
        in_set("touchpoints", "touch_type", "touchpoints.touch_type", TOUCH_TYPES),
        between(
            "touchpoints",
            "occurred_at",
            "touchpoints.occurred_at",
            dt.datetime.combine(config.earliest_date, dt.time(), dt.UTC),
            as_of + config.clock_skew,
            "plausible",
            True,
        ),
        unique_id(tp_q, "true", "touchpoints", "touchpoint_id"),
    ]
    tp_window = config.freshness_window("marketing.touchpoints")
    if tp_window is not None:
        tp_rules.append(
            freshness(
                "touchpoints",
                "occurred_at",
                "touchpoints.occurred_at",
                # occurred_at is stored as naive UTC TIMESTAMP by the marketing loader
                (as_of - tp_window).astimezone(dt.UTC).replace(tzinfo=None),
                tp_q,
                "true",
                tp_window,
            )
        )
    files = {"load_id_sql": FILE_LOAD_ID, "row_key_sql": FILE_ROW_KEY, "load_columns": FILE_COLUMNS}
    return [
        TableSpec(
            "marketing.ad_spend",
            schema,
            "ad_spend",
            "date",
            tuple(ad_rules),
            record_id_sql=(
                "CAST(\"date\" AS VARCHAR) || '/' || coalesce(\"channel\", '') || '/' || "
                "coalesce(\"campaign\", '')"
            ),
            **files,
        ),
        TableSpec(
            "marketing.touchpoints",
            schema,
            "touchpoints",
            "touchpoint_id",
            tuple(tp_rules),
            **files,
        ),
    ]


def all_raw_specs(config: QualityConfig) -> list[TableSpec]:
    return salesforce_specs(config) + marketing_specs(config)


def spec_for(object_or_label: str, config: QualityConfig) -> TableSpec:
    """The suite for a Salesforce API name (`Opportunity`) or a `schema.table` label."""
    for spec in all_raw_specs(config):
        if object_or_label in (spec.object, spec.label, spec.table):
            return spec
    raise KeyError(
        f"no quality suite for {object_or_label!r}; known: Salesforce objects "
        f"{sorted(OBJECTS)} and marketing.ad_spend, marketing.touchpoints"
    )


__all__ = [
    "DIMENSIONS",
    "QualityConfig",
    "Rule",
    "TableSpec",
    "all_raw_specs",
    "marketing_specs",
    "picklists_from_describe",
    "salesforce_specs",
    "spec_for",
]
