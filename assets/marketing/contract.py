"""The marketing landing-file contract: kinds, columns, vocabularies, warehouse tables.

Pure constants and tiny helpers (no Dagster, no DuckDB connection). Landing files follow the
shared contract: `ad_spend(date, channel, campaign, spend, currency[, impressions, clicks])` and
`touchpoints(touchpoint_id, occurred_at, channel, campaign, touch_type, email[, utm_*])`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from orchestration.settings import RAW_MARKETING_SCHEMA
from sandbox.schema import MARKETING_CHANNELS
from sandbox.schema import TOUCH_TYPES as CONTRACT_TOUCH_TYPES

log = logging.getLogger(__name__)

SCHEMA = RAW_MARKETING_SCHEMA
AD_SPEND = "ad_spend"
TOUCHPOINTS = "touchpoints"
KINDS: tuple[str, ...] = (AD_SPEND, TOUCHPOINTS)
QUARANTINE_TABLE = "quarantine"
LOADED_FILES_TABLE = "loaded_files"
# The last computed run summary per kind (row counts, matched people, preview): reused by a run
# that loads no file of that kind instead of rescanning the tables.
SUMMARY_TABLE = "load_summary"

SALT_ENV = "SALESOPS_EMAIL_SALT"
DEFAULT_SALT = "salesops-demo-salt"

# File name endings the loader reads; anything else in a landing folder is reported as ignored.
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)

CHANNELS: tuple[str, ...] = MARKETING_CHANNELS
TOUCH_TYPES: tuple[str, ...] = CONTRACT_TOUCH_TYPES


@dataclass(frozen=True)
class KindSpec:
    """Columns of one landing-file kind."""

    kind: str
    required_columns: tuple[str, ...]  # must be in the header
    optional_columns: tuple[str, ...]  # may be absent from the header (loaded as NULL)
    required_values: tuple[str, ...]  # must be non-empty in every row

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required_columns + self.optional_columns


SPECS: dict[str, KindSpec] = {
    AD_SPEND: KindSpec(
        kind=AD_SPEND,
        required_columns=("date", "channel", "campaign", "spend", "currency"),
        optional_columns=("impressions", "clicks"),
        required_values=("date", "channel", "spend", "currency"),
    ),
    TOUCHPOINTS: KindSpec(
        kind=TOUCHPOINTS,
        required_columns=(
            "touchpoint_id",
            "occurred_at",
            "channel",
            "campaign",
            "touch_type",
            "email",
        ),
        optional_columns=("utm_source", "utm_medium", "utm_campaign"),
        required_values=("touchpoint_id", "occurred_at", "channel", "touch_type"),
    ),
}

# Quarantine reason codes (stable strings: reports and tests group by them).
REASON_MALFORMED_ROW = "malformed_row"
REASON_MISSING_VALUE = "missing_value"
REASON_INVALID_DATE = "invalid_date"
REASON_INVALID_TIMESTAMP = "invalid_timestamp"
REASON_MISSING_UTC_OFFSET = "missing_utc_offset"
REASON_UNKNOWN_CHANNEL = "unknown_channel"
REASON_UNKNOWN_TOUCH_TYPE = "unknown_touch_type"
REASON_INVALID_SPEND = "invalid_spend"
REASON_NEGATIVE_SPEND = "negative_spend"
REASON_INVALID_CURRENCY = "invalid_currency"
REASON_INVALID_COUNT = "invalid_count"
REASON_INVALID_EMAIL = "invalid_email"
REASON_DUPLICATE_ID = "duplicate_touchpoint_id"

REDACTED = "<redacted>"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.{AD_SPEND} (
    date DATE NOT NULL,
    channel VARCHAR NOT NULL,
    campaign VARCHAR,
    spend DECIMAL(18, 4) NOT NULL,
    currency VARCHAR NOT NULL,
    impressions BIGINT,
    clicks BIGINT,
    source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.{TOUCHPOINTS} (
    touchpoint_id VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    channel VARCHAR NOT NULL,
    campaign VARCHAR,
    touch_type VARCHAR NOT NULL,
    email_hash VARCHAR,
    utm_source VARCHAR,
    utm_medium VARCHAR,
    utm_campaign VARCHAR,
    source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.{QUARANTINE_TABLE} (
    file VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    line BIGINT,
    reason VARCHAR NOT NULL,
    detail VARCHAR,
    raw_row JSON,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.{LOADED_FILES_TABLE} (
    file VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    checksum VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    mtime_ns BIGINT
);
-- warehouses loaded before mtime_ns existed (NULL: the file is re-hashed once, then recorded)
ALTER TABLE {SCHEMA}.{LOADED_FILES_TABLE} ADD COLUMN IF NOT EXISTS mtime_ns BIGINT;
CREATE TABLE IF NOT EXISTS {SCHEMA}.{SUMMARY_TABLE} (
    kind VARCHAR NOT NULL,
    table_rows BIGINT NOT NULL,
    quarantine_rows BIGINT NOT NULL,
    matched_people JSON,
    preview JSON,
    computed_at TIMESTAMP NOT NULL
);
"""


def email_salt() -> str:
    """The salt for email hashes (env SALESOPS_EMAIL_SALT, read at call time; never logged)."""
    salt = os.environ.get(SALT_ENV)
    if salt:
        return salt
    log.info("%s is not set: using the public demo salt (set it in production)", SALT_ENV)
    return DEFAULT_SALT
