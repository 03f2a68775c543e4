"""The optimised loader against an independent, row-by-row Python computation.

Seeded files mix clean rows with one planted defect per row (each defect knows its reason
code), repeated ids within a file and across files, a CSV and a Parquet file. The expected
table and quarantine are computed here in plain Python (hashlib, datetime), then compared with
the warehouse row for row, details included. A load in two runs (incremental) must leave
exactly what one load of the same files leaves.
"""

import hashlib
import random
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.marketing.loader import load_landing

SALT = "reference-salt"
COLUMNS = ["touchpoint_id", "occurred_at", "channel", "campaign", "touch_type", "email"]
CHANNELS = ["paid_search", "email", "webinar", "direct", "partner"]
TYPES = ["ad_click", "email_click", "webinar", "web_visit", "form_fill", "event"]
OFFSETS = ["Z", "+00:00", "-05:00", "+02:00", "+05:30"]

# defect -> (how the row is spoiled, reason)
DEFECTS = {
    "missing_id": ("touchpoint_id", "", "missing_value"),
    "missing_time": ("occurred_at", "  ", "missing_value"),
    "missing_channel": ("channel", "", "missing_value"),
    "missing_type": ("touch_type", "", "missing_value"),
    "bad_time": ("occurred_at", "not-a-time", "invalid_timestamp"),
    "bad_month": ("occurred_at", "2024-13-01T10:00:00Z", "invalid_timestamp"),
    "naive_time": ("occurred_at", "2024-03-01 10:00:00", "missing_utc_offset"),
    "bad_channel": ("channel", "television", "unknown_channel"),
    "bad_type": ("touch_type", "pigeon", "unknown_touch_type"),
    "bad_email": ("email", "someone-at-example.com", "invalid_email"),
}


def sha(email: str) -> str:
    return hashlib.sha256((SALT + email.lower()).encode()).hexdigest()


def make_rows(rng: random.Random, prefix: str, n: int, reuse: list[str]) -> list[dict]:
    """n rows as strings; some spoiled, some repeating ids (of this file or of `reuse`)."""
    rows: list[dict] = []
    for i in range(n):
        offset = rng.choice(OFFSETS)
        row = {
            "touchpoint_id": f"{prefix}-{i}",
            "occurred_at": f"2024-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:07{offset}",
            "channel": rng.choice(CHANNELS),
            "campaign": rng.choice(["Spring", "", " Launch ", "x@spam.example.com"]),
            "touch_type": rng.choice(TYPES),
            "email": rng.choice(["", f"P{i}@Example.com", f" p{i % 7}@example.com "]),
        }
        if rng.random() < 0.2:
            row["channel"] = f" {row['channel'].upper()} "
        roll = rng.random()
        if roll < 0.25:
            column, value, _ = DEFECTS[rng.choice(sorted(DEFECTS))]
            row[column] = value
        elif roll < 0.35 and rows:
            row["touchpoint_id"] = rng.choice(rows)["touchpoint_id"].strip()
        elif roll < 0.42 and reuse:
            row["touchpoint_id"] = rng.choice(reuse)
        rows.append(row)
    return rows


def expected_reason(row: dict) -> str | None:
    """The rules of docs/MARKETING.md, in order, in plain Python."""
    v = {k: (row[k].strip(" ") or None) for k in COLUMNS}
    for col in ("touchpoint_id", "occurred_at", "channel", "touch_type"):
        if v[col] is None:
            return "missing_value"
    text = v["occurred_at"]
    if text in ("not-a-time", "2024-13-01T10:00:00Z"):
        return "invalid_timestamp"
    if datetime.fromisoformat(text).tzinfo is None:
        return "missing_utc_offset"
    if v["channel"].lower() not in CHANNELS:
        return "unknown_channel"
    if v["touch_type"].lower() not in TYPES:
        return "unknown_touch_type"
    if v["email"] is not None and "@" not in v["email"]:
        return "invalid_email"
    return None


def expected_load(files: list[tuple[str, list[dict], int]]) -> tuple[list[tuple], list[tuple]]:
    """(table rows, quarantine rows) for files loaded in this order; line of row 0 given."""
    table: list[tuple] = []
    quarantine: list[tuple] = []
    loaded: dict[str, tuple[str, int]] = {}  # id -> (file, line) from earlier files
    for file, rows, first_line in files:
        first_ok: dict[str, int] = {}
        for i, row in enumerate(rows):
            line = first_line + i
            reason = expected_reason(row)
            tid = row["touchpoint_id"].strip(" ")
            detail = None
            if reason is None and tid in loaded:
                reason = "duplicate_touchpoint_id"
                detail = (
                    f"touchpoint_id '{tid}' was already loaded from {loaded[tid][0]} "
                    f"line {loaded[tid][1]}"
                )
            elif reason is None and tid in first_ok:
                reason = "duplicate_touchpoint_id"
                detail = f"touchpoint_id '{tid}' repeats line {first_ok[tid]} of this file"
            if reason is not None:
                quarantine.append((file, line, reason, detail))
                continue
            first_ok[tid] = line
            v = {k: (row[k].strip(" ") or None) for k in COLUMNS}
            when = datetime.fromisoformat(v["occurred_at"]).astimezone(UTC).replace(tzinfo=None)
            campaign = v["campaign"]
            if campaign is not None and "@" in campaign:
                campaign = "<redacted>"
            email = v["email"]
            table.append(
                (
                    tid,
                    when,
                    v["channel"].lower(),
                    campaign,
                    v["touch_type"].lower(),
                    sha(email) if email else None,
                    file,
                    line,
                )
            )
        for tid, line in first_ok.items():
            loaded[tid] = (file, line)
    return sorted(table), sorted(quarantine)


def write_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(COLUMNS)] + [",".join(row[c] for c in COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_parquet(path: Path, rows: list[dict]) -> None:
    pq.write_table(pa.table({c: [row[c] for row in rows] for c in COLUMNS}), path)


def actual(warehouse: Path) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        table = con.execute(
            "SELECT touchpoint_id, occurred_at, channel, campaign, touch_type, email_hash, "
            "source_file, source_line FROM marketing.touchpoints ORDER BY ALL"
        ).fetchall()
        quarantine = con.execute(
            "SELECT file, line, reason, CASE WHEN reason = 'duplicate_touchpoint_id' "
            "THEN detail END FROM marketing.quarantine ORDER BY ALL"
        ).fetchall()
    return table, quarantine


@pytest.fixture(scope="module")
def planted() -> dict[str, list[dict]]:
    rng = random.Random(20240301)
    a = make_rows(rng, "a", 600, [])
    b = make_rows(rng, "b", 900, [r["touchpoint_id"] for r in a[:300]])
    return {"a": a, "b": b}


def test_load_matches_an_independent_row_by_row_computation(tmp_path: Path, planted) -> None:
    folder = tmp_path / "landing" / "touchpoints"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", planted["a"])
    write_parquet(folder / "b.parquet", planted["b"])
    reports = load_landing(tmp_path / "w.duckdb", tmp_path / "landing", ["touchpoints"], salt=SALT)
    table, quarantine = expected_load(
        [("touchpoints/a.csv", planted["a"], 2), ("touchpoints/b.parquet", planted["b"], 1)]
    )
    # the fixture exercises every reason, both duplicate kinds and clean rows
    reasons = {q[2] for q in quarantine}
    assert reasons == {r for _, _, r in DEFECTS.values()} | {"duplicate_touchpoint_id"}
    details = {q[3].split("'")[2].split()[0] for q in quarantine if q[3]}
    assert details == {"was", "repeats"}
    assert len(table) > 700
    got_table, got_quarantine = actual(tmp_path / "w.duckdb")
    assert got_table == table
    assert got_quarantine == quarantine
    report = reports["touchpoints"]
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (
        1500,
        len(table),
        len(quarantine),
    )
    expected_reasons: dict[str, int] = {}
    for q in quarantine:
        expected_reasons[q[2]] = expected_reasons.get(q[2], 0) + 1
    assert report.quarantine_reasons == expected_reasons


def test_two_runs_leave_exactly_what_one_run_leaves(tmp_path: Path, planted) -> None:
    def landing(root: Path, names: list[str]) -> Path:
        folder = root / "landing" / "touchpoints"
        folder.mkdir(parents=True, exist_ok=True)
        if "a" in names:
            write_csv(folder / "a.csv", planted["a"])
        if "b" in names:
            write_parquet(folder / "b.parquet", planted["b"])
        return root / "landing"

    inc, scratch = tmp_path / "inc", tmp_path / "scratch"
    load_landing(inc / "w.duckdb", landing(inc, ["a"]), salt=SALT)
    load_landing(inc / "w.duckdb", landing(inc, ["a", "b"]), salt=SALT)
    load_landing(inc / "w.duckdb", landing(inc, ["a", "b"]), salt=SALT)  # nothing new
    load_landing(scratch / "w.duckdb", landing(scratch, ["a", "b"]), salt=SALT)

    def everything(warehouse: Path) -> dict[str, list[tuple]]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return {
                table: con.execute(
                    f"SELECT * EXCLUDE (loaded_at) FROM marketing.{table} ORDER BY ALL"
                ).fetchall()
                for table in ("touchpoints", "ad_spend", "quarantine")
            } | {
                "loaded_files": con.execute(
                    "SELECT file, checksum, rows_read, rows_loaded, rows_quarantined "
                    "FROM marketing.loaded_files ORDER BY ALL"
                ).fetchall()
            }

    inc_state, scratch_state = everything(inc / "w.duckdb"), everything(scratch / "w.duckdb")
    assert inc_state["touchpoints"] and inc_state["quarantine"]
    assert inc_state == scratch_state


def make_sorted_rows(rng: random.Random, ids: list[str], pad: bool) -> list[dict]:
    """Rows with the given (increasing, distinct) ids, some spoiled; `pad` adds spaces around
    some ids (equal after trimming, so still increasing)."""
    rows = make_rows(rng, "unused", len(ids), [])
    for row, tid in zip(rows, ids, strict=True):
        if row["touchpoint_id"] != "":  # keep the planted missing ids
            row["touchpoint_id"] = f" {tid} " if pad and rng.random() < 0.3 else tid
    return rows


@pytest.mark.parametrize("pad", [False, True], ids=["plain-ids", "padded-ids"])
def test_increasing_ids_skip_the_id_aggregate_and_still_find_every_duplicate(
    tmp_path: Path, pad: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Files whose ids increase take the fast path (no id aggregate; the loaded ids are looked
    up only within the file's id range). a: even ids 0..598; b: every id 300..899 (the even
    ones up to 598 were loaded from a); c: ids above everything loaded. Expected from the
    row-by-row computation."""
    rng = random.Random(20240302)
    name = "t-{:05d}".format
    a = make_sorted_rows(rng, [name(i) for i in range(0, 600, 2)], pad=False)
    b = make_sorted_rows(rng, [name(i) for i in range(300, 900)], pad=pad)
    c = make_sorted_rows(rng, [name(i) for i in range(1000, 1100)], pad=pad)
    folder = tmp_path / "landing" / "touchpoints"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", a)
    write_parquet(folder / "b.parquet", b)
    write_csv(folder / "c.csv", c)
    with caplog.at_level("DEBUG", logger="assets.marketing.validate"):
        load_landing(tmp_path / "w.duckdb", tmp_path / "landing", ["touchpoints"], salt=SALT)
    fast = [r for r in caplog.records if "strictly increasing" in r.getMessage()]
    assert len(fast) == 3  # every file took the fast path
    table, quarantine = expected_load(
        [
            ("touchpoints/a.csv", a, 2),
            ("touchpoints/b.parquet", b, 1),
            ("touchpoints/c.csv", c, 2),
        ]
    )
    prior = [q for q in quarantine if q[3] and "was already loaded" in q[3]]
    assert len(prior) > 50 and all(q[0] == "touchpoints/b.parquet" for q in prior)
    if pad:  # some of the duplicates found are padded in b (the raw id sorts before the range)
        padded = {r["touchpoint_id"].strip() for r in b if r["touchpoint_id"].startswith(" ")}
        assert any(q[3].split("'")[1] in padded for q in prior)
    assert actual(tmp_path / "w.duckdb") == (table, quarantine)
