"""Marketing landing loader: validation, quarantine, replace/skip, bad files, email privacy.

Every expectation is planted in the fixture files (line numbers, reasons, counts, hashes
computed here with hashlib), never copied from the loader's output.
"""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.marketing import contract as c
from assets.marketing.loader import (
    FAILED,
    LOADED,
    REPLACED,
    SKIPPED,
    MarketingLoadError,
    load_landing,
    raise_for_failures,
)

SALT = "unit-test-salt"

TP_HEADER = "touchpoint_id,occurred_at,channel,campaign,touch_type,email,utm_source,utm_medium"
AD_HEADER = "date,channel,campaign,spend,currency,impressions,clicks"


def sha(email: str) -> str:
    return hashlib.sha256((SALT + email.strip(" ").lower()).encode()).hexdigest()


def write(landing: Path, kind: str, name: str, lines: list[str] | bytes, eol: str = "\n") -> Path:
    folder = landing / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = lines if isinstance(lines, bytes) else (eol.join(lines) + eol).encode()
    path.write_bytes(data)
    return path


def load(home: Path, **kwargs):
    return load_landing(home / "warehouse.duckdb", home / "landing", salt=SALT, **kwargs)


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()


def quarantine(home: Path, file: str) -> dict[int, str]:
    rows = query(home, "SELECT line, reason FROM marketing.quarantine WHERE file = ?", [file])
    return dict(rows)


def file_result(reports, kind: str, file: str):
    (result,) = [f for f in reports[kind].files if f.file == file]
    return result


# line number in file -> expected reason (None = loads). Header is line 1.
TOUCHPOINT_ROWS = [
    (
        "tp-1,2024-03-01T10:00:00+02:00,paid_search,Spring,ad_click, Ann@Example.com ,google,cpc",
        None,
    ),
    ("tp-2,2024-03-01T10:00:00Z,email,Spring,email_click,bob@example.com,,", None),
    ("tp-3,2024-03-01 10:00:00,email,Spring,email_click,bob@example.com,,", "missing_utc_offset"),
    ("tp-4,not-a-time,email,Spring,email_click,bob@example.com,,", "invalid_timestamp"),
    ("tp-5,2024-03-01T10:00:00Z,television,Spring,ad_click,bob@example.com,,", "unknown_channel"),
    (
        "tp-6,2024-03-01T10:00:00Z,email,Spring,carrier_pigeon,bob@example.com,,",
        "unknown_touch_type",
    ),
    (",2024-03-01T10:00:00Z,email,Spring,email_click,bob@example.com,,", "missing_value"),
    ("tp-7,,email,Spring,email_click,bob@example.com,,", "missing_value"),
    (
        "tp-1,2024-03-02T10:00:00Z,email,Spring,email_click,bob@example.com,,",
        "duplicate_touchpoint_id",
    ),
    ("tp-8,2024-03-01T10:00:00Z,email,Spring,email_click,carol-at-example.com,,", "invalid_email"),
    (
        "tp-9,2024-03-01T10:00:00Z,email,Spring,email_click,dave@example.com,,,extra",
        "malformed_row",
    ),
    ("tp-10,2024-02-29T23:30:00-05:00,WEBINAR,Launch,webinar,erin@example.com,,", None),
    ("tp-11,2024-03-01T10:00:00Z,direct,,web_visit,,,", None),
    ("tp-12,2024-13-01T10:00:00Z,direct,,web_visit,,,", "invalid_timestamp"),
]
EMAILS = [
    "ann@example.com",
    "bob@example.com",
    "carol-at-example.com",
    "dave@example.com",
    "erin@example.com",
]


def expected(rows: list[tuple[str, str | None]]) -> tuple[dict[int, str], list[int]]:
    bad = {i + 2: reason for i, (_, reason) in enumerate(rows) if reason}
    good = [i + 2 for i, (_, reason) in enumerate(rows) if reason is None]
    return bad, good


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "landing").mkdir()
    return tmp_path


def test_touchpoint_bad_rows_are_quarantined_with_reason_and_line(home: Path) -> None:
    write(
        home / "landing", "touchpoints", "march.csv", [TP_HEADER] + [r for r, _ in TOUCHPOINT_ROWS]
    )
    reports = load(home)
    bad, good = expected(TOUCHPOINT_ROWS)
    assert quarantine(home, "touchpoints/march.csv") == bad
    loaded = query(
        home, "SELECT source_line, touchpoint_id FROM marketing.touchpoints ORDER BY source_line"
    )
    assert [line for line, _ in loaded] == good
    assert [tp for _, tp in loaded] == ["tp-1", "tp-2", "tp-10", "tp-11"]
    result = file_result(reports, "touchpoints", "touchpoints/march.csv")
    assert (result.status, result.rows_read) == (LOADED, len(TOUCHPOINT_ROWS))
    assert (result.rows_loaded, result.rows_quarantined) == (len(good), len(bad))
    assert reports["touchpoints"].quarantine_reasons == {
        reason: sum(1 for r in bad.values() if r == reason) for reason in set(bad.values())
    }
    detail = query(
        home, "SELECT detail FROM marketing.quarantine WHERE reason = 'duplicate_touchpoint_id'"
    )
    assert detail == [("touchpoint_id 'tp-1' repeats line 2 of this file",)]


def test_touchpoint_values_are_typed_normalised_and_hashed(home: Path) -> None:
    write(
        home / "landing", "touchpoints", "march.csv", [TP_HEADER] + [r for r, _ in TOUCHPOINT_ROWS]
    )
    load(home)
    rows = query(
        home,
        "SELECT touchpoint_id, occurred_at, channel, campaign, touch_type, email_hash, utm_source,"
        " utm_medium, utm_campaign FROM marketing.touchpoints ORDER BY source_line",
    )
    assert rows == [
        (
            "tp-1",
            datetime(2024, 3, 1, 8, 0),
            "paid_search",
            "Spring",
            "ad_click",
            sha("ann@example.com"),
            "google",
            "cpc",
            None,
        ),
        (
            "tp-2",
            datetime(2024, 3, 1, 10, 0),
            "email",
            "Spring",
            "email_click",
            sha("bob@example.com"),
            None,
            None,
            None,
        ),
        (
            "tp-10",
            datetime(2024, 3, 1, 4, 30),
            "webinar",
            "Launch",
            "webinar",
            sha("erin@example.com"),
            None,
            None,
            None,
        ),
        ("tp-11", datetime(2024, 3, 1, 10, 0), "direct", None, "web_visit", None, None, None, None),
    ]
    types = dict(
        query(
            home,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marketing' AND table_name = 'touchpoints'",
        )
    )
    assert types["occurred_at"] == "TIMESTAMP"
    assert "email" not in types


AD_ROWS = [
    ("2024-03-01,paid_search,Spring,100.50,usd,1000,10", None),
    ("2024-03-01,display,Spring,0,EUR,,", None),
    ("2024-03-32,display,Spring,1,EUR,,", "invalid_date"),
    ("03/01/2024,display,Spring,1,EUR,,", "invalid_date"),
    ("2024-03-01,radio,Spring,1,EUR,,", "unknown_channel"),
    ("2024-03-01,display,Spring,abc,EUR,,", "invalid_spend"),
    ("2024-03-01,display,Spring,NaN,EUR,,", "invalid_spend"),
    ("2024-03-01,display,Spring,-5,EUR,,", "negative_spend"),
    ("2024-03-01,display,Spring,,EUR,,", "missing_value"),
    (",display,Spring,1,EUR,,", "missing_value"),
    ("2024-03-01,display,Spring,1,euro,,", "invalid_currency"),
    ("2024-03-01,display,Spring,1,EUR,-3,", "invalid_count"),
    ("2024-03-01,display,Spring,1,EUR,,1.5", "invalid_count"),
    ("2024-03-01,display,Spring,1,EUR", "malformed_row"),
    ("2024-03-02,email,,12.3456,GBP,7,0", None),
]


def test_ad_spend_bad_rows_are_quarantined_and_good_rows_typed(home: Path) -> None:
    write(home / "landing", "ad_spend", "march.csv", [AD_HEADER] + [r for r, _ in AD_ROWS])
    reports = load(home)
    bad, good = expected(AD_ROWS)
    assert quarantine(home, "ad_spend/march.csv") == bad
    rows = query(
        home,
        "SELECT source_line, date, channel, campaign, spend, currency, impressions, clicks "
        "FROM marketing.ad_spend ORDER BY source_line",
    )
    assert rows == [
        (2, date(2024, 3, 1), "paid_search", "Spring", Decimal("100.5"), "USD", 1000, 10),
        (3, date(2024, 3, 1), "display", "Spring", Decimal("0"), "EUR", None, None),
        (16, date(2024, 3, 2), "email", None, Decimal("12.3456"), "GBP", 7, 0),
    ]
    assert [r[0] for r in rows] == good
    result = file_result(reports, "ad_spend", "ad_spend/march.csv")
    assert result.rows_read == len(AD_ROWS) == result.rows_loaded + result.rows_quarantined


def test_lines_stay_exact_after_malformed_records(home: Path) -> None:
    lines = [AD_HEADER]
    planted: dict[int, str] = {}
    for n in range(2, 40):
        if n in (3, 4, 17, 30):
            lines.append("2024-03-01,display")  # too few columns
            planted[n] = "malformed_row"
        elif n in (5, 18, 31, 39):
            lines.append(f"2024-03-01,display,c{n},-1,EUR,,")
            planted[n] = "negative_spend"
        else:
            lines.append(f"2024-03-01,display,c{n},{n},EUR,,")
    write(home / "landing", "ad_spend", "gaps.csv", lines)
    load(home)
    assert quarantine(home, "ad_spend/gaps.csv") == planted
    loaded = query(home, "SELECT source_line, campaign, spend FROM marketing.ad_spend")
    # Each good row's campaign/spend encode its own line number.
    assert loaded and all(camp == f"c{line}" and spend == line for line, camp, spend in loaded)
    assert len(loaded) == 38 - len(planted)


def test_bom_crlf_case_and_extra_columns_are_tolerated(home: Path) -> None:
    header = "\ufeffTouchpoint_ID, Occurred_At ,Channel,Campaign,Touch_Type,Email,Notes"
    rows = [header, "tp-1,2024-03-01T10:00:00Z,email,Spring,email_click,ann@example.com,x"]
    path = write(home / "landing", "touchpoints", "excel.csv", rows, eol="\r\n")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    reports = load(home)
    result = file_result(reports, "touchpoints", "touchpoints/excel.csv")
    assert (result.status, result.rows_loaded, result.ignored_columns) == (LOADED, 1, ("Notes",))
    assert query(home, "SELECT touchpoint_id, campaign, utm_source FROM marketing.touchpoints") == [
        ("tp-1", "Spring", None)
    ]


def test_parquet_files_load_with_row_numbers_as_lines(home: Path) -> None:
    folder = home / "landing" / "touchpoints"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "touchpoint_id": ["p-1", "p-2", "p-3"],
            "occurred_at": pa.array(
                [datetime(2024, 3, 1, 10, tzinfo=UTC)] * 3, type=pa.timestamp("ms", tz="UTC")
            ),
            "channel": ["email", "nope", "direct"],
            "campaign": ["Spring", "Spring", None],
            "touch_type": ["email_click", "email_click", "web_visit"],
            "email": ["ann@example.com", "bob@example.com", None],
        }
    )
    pq.write_table(table, folder / "march.parquet")
    spend = pa.table(
        {
            "date": pa.array([date(2024, 3, 1), date(2024, 3, 2)], type=pa.date32()),
            "channel": ["display", "email"],
            "campaign": ["Spring", "Spring"],
            "spend": [10.25, -1.0],
            "currency": ["USD", "USD"],
            "impressions": pa.array([100, None], type=pa.int64()),
        }
    )
    write(home / "landing", "ad_spend", "march.parquet", b"")  # replaced just below
    pq.write_table(spend, home / "landing" / "ad_spend" / "march.parquet")
    load(home)
    assert query(
        home,
        "SELECT touchpoint_id, occurred_at, source_line FROM marketing.touchpoints "
        "ORDER BY source_line",
    ) == [
        ("p-1", datetime(2024, 3, 1, 10), 1),
        ("p-3", datetime(2024, 3, 1, 10), 3),
    ]
    assert quarantine(home, "touchpoints/march.parquet") == {2: "unknown_channel"}
    assert query(home, "SELECT date, spend, impressions, clicks FROM marketing.ad_spend") == [
        (date(2024, 3, 1), Decimal("10.25"), 100, None)
    ]
    assert quarantine(home, "ad_spend/march.parquet") == {2: "negative_spend"}


def test_naive_parquet_timestamps_are_quarantined_for_missing_offset(home: Path) -> None:
    folder = home / "landing" / "touchpoints"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "touchpoint_id": ["p-1"],
            "occurred_at": pa.array([datetime(2024, 3, 1, 10)], type=pa.timestamp("ms")),
            "channel": ["email"],
            "campaign": ["Spring"],
            "touch_type": ["email_click"],
            "email": ["ann@example.com"],
        }
    )
    pq.write_table(table, folder / "naive.parquet")
    load(home)
    assert quarantine(home, "touchpoints/naive.parquet") == {1: "missing_utc_offset"}


def test_read_equals_loaded_plus_quarantined_for_every_file(home: Path) -> None:
    tp_lines = [TP_HEADER] + [r for r, _ in TOUCHPOINT_ROWS]
    ad_lines = [AD_HEADER] + [r for r, _ in AD_ROWS]
    write(home / "landing", "touchpoints", "a.csv", tp_lines)
    write(home / "landing", "touchpoints", "b.csv", [TP_HEADER, tp_lines[2].replace("tp-2", "b-2")])
    write(home / "landing", "ad_spend", "a.csv", ad_lines)
    load(home)
    files = query(
        home, "SELECT file, rows_read, rows_loaded, rows_quarantined FROM marketing.loaded_files"
    )
    data_lines = {
        "touchpoints/a.csv": len(tp_lines) - 1,
        "touchpoints/b.csv": 1,
        "ad_spend/a.csv": len(ad_lines) - 1,
    }
    assert {f for f, *_ in files} == set(data_lines)
    for file, read, loaded, quarantined in files:
        kind = file.split("/")[0]
        in_table = query(
            home, f"SELECT count(*) FROM marketing.{kind} WHERE source_file = ?", [file]
        )[0][0]
        in_quarantine = query(
            home, "SELECT count(*) FROM marketing.quarantine WHERE file = ?", [file]
        )[0][0]
        assert read == data_lines[file] == loaded + quarantined
        assert (in_table, in_quarantine) == (loaded, quarantined)


def test_duplicate_id_across_files_keeps_the_first_file(home: Path) -> None:
    row = "tp-1,2024-03-01T10:00:00Z,email,Spring,email_click,ann@example.com,,"
    write(home / "landing", "touchpoints", "2024-03-a.csv", [TP_HEADER, row])
    write(
        home / "landing",
        "touchpoints",
        "2024-03-b.csv",
        [TP_HEADER, row, row.replace("tp-1", "tp-2")],
    )
    load(home)
    assert query(
        home, "SELECT touchpoint_id, source_file FROM marketing.touchpoints ORDER BY 1"
    ) == [
        ("tp-1", "touchpoints/2024-03-a.csv"),
        ("tp-2", "touchpoints/2024-03-b.csv"),
    ]
    assert query(home, "SELECT file, line, reason, detail FROM marketing.quarantine") == [
        (
            "touchpoints/2024-03-b.csv",
            2,
            "duplicate_touchpoint_id",
            "touchpoint_id 'tp-1' was already loaded from touchpoints/2024-03-a.csv line 2",
        ),
    ]


def test_rerun_is_idempotent_and_changed_file_replaces_its_rows(home: Path) -> None:
    landing = home / "landing"
    write(landing, "touchpoints", "a.csv", [TP_HEADER] + [r for r, _ in TOUCHPOINT_ROWS])
    write(landing, "ad_spend", "a.csv", [AD_HEADER] + [r for r, _ in AD_ROWS])
    first = load(home)
    counts = (
        "SELECT (SELECT count(*) FROM marketing.touchpoints), "
        "(SELECT count(*) FROM marketing.ad_spend), (SELECT count(*) FROM marketing.quarantine)"
    )
    before = query(home, counts)
    second = load(home)
    assert [f.status for r in second.values() for f in r.files] == [SKIPPED, SKIPPED]
    assert second["touchpoints"].rows_read == 0
    assert query(home, counts) == before
    assert query(
        home, "SELECT count(*) - count(DISTINCT touchpoint_id) FROM marketing.touchpoints"
    ) == [(0,)]
    first_loaded_at = query(
        home, "SELECT loaded_at FROM marketing.loaded_files WHERE file = 'ad_spend/a.csv'"
    )

    # Same name, new content: old rows and old quarantine rows of that file are replaced.
    write(
        landing,
        "touchpoints",
        "a.csv",
        [
            TP_HEADER,
            "tp-1,2024-04-01T00:00:00Z,referral,Summer,form_fill,ann@example.com,,",
            "tp-new,2024-04-01T00:00:00Z,referral,Summer,form_fill,zed@example.com,,",
            "tp-bad,2024-04-01T00:00:00Z,referral,Summer,dance,zed@example.com,,",
        ],
    )
    third = load(home)
    statuses = {f.file: f.status for r in third.values() for f in r.files}
    assert statuses == {"touchpoints/a.csv": REPLACED, "ad_spend/a.csv": SKIPPED}
    assert query(home, "SELECT touchpoint_id, channel FROM marketing.touchpoints ORDER BY 1") == [
        ("tp-1", "referral"),
        ("tp-new", "referral"),
    ]
    assert quarantine(home, "touchpoints/a.csv") == {4: "unknown_touch_type"}
    assert query(
        home,
        "SELECT rows_read, rows_loaded, rows_quarantined, checksum FROM "
        "marketing.loaded_files WHERE file = 'touchpoints/a.csv'",
    ) == [(3, 2, 1, hashlib.sha256((landing / "touchpoints" / "a.csv").read_bytes()).hexdigest())]
    # The untouched ad_spend file kept its rows and its load record.
    assert (
        query(home, "SELECT loaded_at FROM marketing.loaded_files WHERE file = 'ad_spend/a.csv'")
        == first_loaded_at
    )
    assert (
        first["ad_spend"].rows_loaded
        == query(home, "SELECT count(*) FROM marketing.ad_spend")[0][0]
    )


def test_force_reload_reloads_unchanged_files_without_duplicates(home: Path) -> None:
    write(home / "landing", "ad_spend", "a.csv", [AD_HEADER] + [r for r, _ in AD_ROWS])
    load(home)
    reports = load(home, force=True)
    assert [f.status for f in reports["ad_spend"].files] == [REPLACED]
    assert query(home, "SELECT count(*) FROM marketing.ad_spend") == [(3,)]


def test_removed_file_keeps_rows_and_header_only_file_retracts(home: Path) -> None:
    landing = home / "landing"
    path = write(landing, "ad_spend", "a.csv", [AD_HEADER, "2024-03-01,display,S,1,EUR,,"])
    load(home)
    path.unlink()
    reports = load(home)
    assert reports["ad_spend"].missing_files == ["ad_spend/a.csv"]
    assert query(home, "SELECT count(*) FROM marketing.ad_spend") == [(1,)]
    write(landing, "ad_spend", "a.csv", [AD_HEADER])
    reports = load(home)
    assert [(f.status, f.rows_read) for f in reports["ad_spend"].files] == [(REPLACED, 0)]
    assert query(home, "SELECT count(*) FROM marketing.ad_spend") == [(0,)]


def test_other_files_are_ignored_and_reported(home: Path) -> None:
    landing = home / "landing"
    write(landing, "ad_spend", "notes.txt", ["hello"])
    write(landing, "ad_spend", ".partial.csv", [AD_HEADER, "x"])
    reports = load(home)
    assert reports["ad_spend"].ignored_files == ["ad_spend/notes.txt"]
    assert reports["ad_spend"].files == []


GOOD_TP = [TP_HEADER] + [
    f"ok-{i},2024-03-01T10:00:00Z,email,Spring,email_click,p{i}@example.com,," for i in range(200)
]


def _bad_files() -> dict[str, tuple[str, bytes, str]]:
    good_bytes = ("\n".join(GOOD_TP) + "\n").encode()
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"touchpoint_id": ["x"] * 50}), buffer)
    parquet_bytes = buffer.getvalue().to_pybytes()
    return {
        "empty": ("empty.csv", b"", "empty"),
        "missing_column": (
            "nocol.csv",
            b"touchpoint_id,occurred_at,channel,campaign,email\nx,2024-03-01T10:00:00Z,email,S,a@b.co\n",
            "missing required column(s) touch_type",
        ),
        "not_utf8": (
            "latin1.csv",
            good_bytes
            + "late-1,2024-03-01T10:00:00Z,email,Caf\xe9,email_click,,,\n".encode("latin-1"),
            "utf-8",
        ),
        "semicolons": (
            "excel_fr.csv",
            TP_HEADER.replace(",", ";").encode()
            + b"\nx;2024-03-01T10:00:00Z;email;S;web_visit;;;\n",
            "comma-separated",
        ),
        "unterminated_quote": (
            "quote.csv",
            good_bytes + b'late-1,2024-03-01T10:00:00Z,email,"Spring,email_click,,,\n',
            "unterminated",
        ),
        "corrupt_parquet": ("broken.parquet", parquet_bytes[: len(parquet_bytes) // 2], "Parquet"),
        "csv_named_parquet": ("fake.parquet", good_bytes, "Parquet"),
        "parquet_missing_column": ("cols.parquet", parquet_bytes, "missing required column(s)"),
    }


@pytest.mark.parametrize("case", sorted(_bad_files()))
def test_unreadable_file_loads_nothing_and_good_files_still_load(home: Path, case: str) -> None:
    name, content, phrase = _bad_files()[case]
    landing = home / "landing"
    write(landing, "touchpoints", "good.csv", GOOD_TP)
    write(landing, "touchpoints", name, content)
    reports = load(home)
    bad = file_result(reports, "touchpoints", f"touchpoints/{name}")
    assert bad.status == FAILED
    assert f"touchpoints/{name}" in bad.error and phrase.lower() in bad.error.lower()
    for sql in (
        "SELECT count(*) FROM marketing.touchpoints WHERE source_file = ?",
        "SELECT count(*) FROM marketing.quarantine WHERE file = ?",
        "SELECT count(*) FROM marketing.loaded_files WHERE file = ?",
    ):
        assert query(home, sql, [f"touchpoints/{name}"]) == [(0,)]
    assert file_result(reports, "touchpoints", "touchpoints/good.csv").rows_loaded == 200
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(200,)]
    with pytest.raises(MarketingLoadError, match=f"touchpoints/{name}"):
        raise_for_failures(reports.values())


def test_changed_file_that_became_unreadable_keeps_its_previous_rows(home: Path) -> None:
    landing = home / "landing"
    write(landing, "touchpoints", "a.csv", GOOD_TP[:11])
    load(home)
    write(landing, "touchpoints", "a.csv", b"\xff\xfe" + "\n".join(GOOD_TP).encode("utf-16-le"))
    reports = load(home)
    assert [f.status for f in reports["touchpoints"].files] == [FAILED]
    assert query(home, "SELECT count(*) FROM marketing.touchpoints") == [(10,)]
    (checksum,) = query(home, "SELECT checksum FROM marketing.loaded_files")[0]
    assert checksum == hashlib.sha256(("\n".join(GOOD_TP[:11]) + "\n").encode()).hexdigest()


def test_no_plaintext_email_anywhere_in_the_warehouse(home: Path) -> None:
    landing = home / "landing"
    rows = [r for r, _ in TOUCHPOINT_ROWS] + [
        "tp-20,2024-03-01T10:00:00Z,email,Spring,email_click,frank@example.com,frank@example.com,x",
    ]
    write(landing, "touchpoints", "a.csv", [TP_HEADER] + rows)
    write(landing, "ad_spend", "a.csv", [AD_HEADER, "2024-03-01,display,gina@example.com,1,EUR"])
    load(home)
    columns = query(
        home,
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE data_type IN ('VARCHAR', 'JSON')",
    )
    assert len(columns) >= 20
    emails = EMAILS + ["frank@example.com", "gina@example.com"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for schema, table, column in columns:
            for email in emails:
                (hits,) = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" '
                    f'WHERE contains(lower(CAST("{column}" AS VARCHAR)), ?)',
                    [email],
                ).fetchone()
                assert hits == 0, f"{email} found in {schema}.{table}.{column}"
    # An address typed into a free-text column is scrubbed, the row itself still loads.
    assert query(
        home, "SELECT utm_source FROM marketing.touchpoints WHERE touchpoint_id = 'tp-20'"
    ) == [("<redacted>",)]
    # The hash is kept in quarantine so a bad row can still be traced to a person.
    hashes = query(
        home,
        "SELECT raw_row->>'email_hash' FROM marketing.quarantine WHERE reason = 'unknown_channel'",
    )
    assert hashes == [(sha("bob@example.com"),)]


def test_salt_comes_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.SALT_ENV, "env-salt")
    write(
        home / "landing",
        "touchpoints",
        "a.csv",
        [TP_HEADER, "tp-1,2024-03-01T10:00:00Z,email,S,email_click,Ann@Example.com,,"],
    )
    load_landing(home / "warehouse.duckdb", home / "landing")
    assert query(home, "SELECT email_hash FROM marketing.touchpoints") == [
        (hashlib.sha256(b"env-saltann@example.com").hexdigest(),)
    ]
    monkeypatch.delenv(c.SALT_ENV)
    assert c.email_salt() == "salesops-demo-salt"


def test_touchpoints_matched_to_known_leads_and_contacts(home: Path) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA salesforce")
        con.execute("CREATE TABLE salesforce.lead (id VARCHAR, email VARCHAR)")
        con.execute("CREATE TABLE salesforce.contact (id VARCHAR, email VARCHAR)")
        # ann is a lead twice and a contact: one person, her touchpoint counts once
        con.execute(
            "INSERT INTO salesforce.lead VALUES ('L1', 'ANN@example.com'), ('L2', NULL), "
            "('L3', 'ann@example.com')"
        )
        con.execute(
            "INSERT INTO salesforce.contact VALUES ('C1', ' erin@example.com'), "
            "('C2', 'Ann@Example.com')"
        )
    write(home / "landing", "touchpoints", "a.csv", [TP_HEADER] + [r for r, _ in TOUCHPOINT_ROWS])
    reports = load(home)
    # Loaded: tp-1 (ann, lead), tp-2 (bob, unknown), tp-10 (erin, contact), tp-11 (no email).
    assert reports["touchpoints"].matched_people == {
        "touchpoints_with_email": 3,
        "touchpoints_matched": 2,
    }
    assert reports["ad_spend"].matched_people is None


def test_unknown_kind_is_rejected(home: Path) -> None:
    with pytest.raises(ValueError, match="unknown marketing file kind"):
        load(home, kinds=["leads"])


def test_count_mismatch_rolls_the_file_back(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If a bad row were ever lost between read and quarantine, the file must not commit."""
    import assets.marketing.loader as loader_module

    real = loader_module.quarantine_rows_sql
    monkeypatch.setattr(
        loader_module, "quarantine_rows_sql", lambda kind: real(kind) + " AND k.line <> 4"
    )
    write(home / "landing", "ad_spend", "a.csv", [AD_HEADER] + [r for r, _ in AD_ROWS])
    reports = load(home)
    result = file_result(reports, "ad_spend", "ad_spend/a.csv")
    assert result.status == FAILED
    assert f"read {len(AD_ROWS)} rows but loaded 3 and quarantined {len(AD_ROWS) - 4}" in (
        result.error
    )
    for table in ("ad_spend", "quarantine", "loaded_files"):
        assert query(home, f"SELECT count(*) FROM marketing.{table}") == [(0,)]
