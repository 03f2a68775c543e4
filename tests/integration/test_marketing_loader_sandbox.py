"""End to end: the sandbox's generated landing files load completely and match the generator."""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pytest

from assets.marketing import marketing_assets
from assets.marketing.assets import AD_SPEND_KEY, TOUCHPOINTS_KEY
from sandbox.marketing import generate_marketing, write_landing
from sandbox.org import generate, load_into_duckdb

SALT = "e2e-salt"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("marketing_e2e")
    org = generate("small", seed=7)
    marketing = generate_marketing(org)
    files = write_landing(marketing, home / "landing" / "marketing")
    load_into_duckdb(org, home / "warehouse.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SALESOPS_HOME", str(home))
        mp.setenv("SALESOPS_EMAIL_SALT", SALT)
        result = dg.materialize(marketing_assets)
    return home, org, marketing, files, result


def _meta(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {
        e.materialization.asset_key: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def _norm(email: str) -> str:
    return email.strip(" ").lower()


def test_generated_files_load_with_generated_counts(generated) -> None:
    home, _, marketing, files, result = generated
    assert result.success
    assert {p.suffix for p in files} == {".csv", ".parquet"}  # both formats exercised
    meta = _meta(result)
    for kind, key in (("ad_spend", AD_SPEND_KEY), ("touchpoints", TOUCHPOINTS_KEY)):
        generated_rows = marketing[kind].num_rows
        assert generated_rows > 1000
        assert meta[key]["rows_read"] == meta[key]["rows_loaded"] == generated_rows
        assert meta[key]["rows_quarantined"] == 0
        assert meta[key]["dagster/row_count"] == generated_rows
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        loaded_files = con.execute(
            "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined), count(*) "
            "FROM marketing.loaded_files"
        ).fetchone()
        spend = con.execute("SELECT sum(spend), sum(clicks) FROM marketing.ad_spend").fetchone()
    total = marketing["ad_spend"].num_rows + marketing["touchpoints"].num_rows
    assert loaded_files == (total, total, 0, len(files))
    assert float(spend[0]) == pytest.approx(pc.sum(marketing["ad_spend"]["spend"]).as_py())
    assert spend[1] == pc.sum(marketing["ad_spend"]["clicks"]).as_py()


def test_touchpoints_match_the_generator_row_for_row(generated) -> None:
    home, org, marketing, _, _ = generated
    tp = marketing["touchpoints"].to_pylist()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT touchpoint_id, occurred_at, channel, email_hash FROM marketing.touchpoints"
            ).fetchall()
        }
    assert len(rows) == len(tp)
    for t in tp:
        occurred = datetime.fromisoformat(t["occurred_at"].replace("Z", "+00:00"))
        expected_hash = hashlib.sha256((SALT + _norm(t["email"])).encode()).hexdigest()
        assert rows[t["touchpoint_id"]] == (
            occurred.astimezone(UTC).replace(tzinfo=None),
            t["channel"],
            expected_hash,
        )


def test_known_people_matched_and_no_plaintext_email(generated) -> None:
    home, org, marketing, _, result = generated
    people = {
        _norm(e)
        for obj in ("Lead", "Contact")
        for e in org.tables[obj]["Email"].to_pylist()
        if e is not None
    }
    emails = [_norm(e) for e in marketing["touchpoints"]["email"].to_pylist()]
    expected_matched = sum(1 for e in emails if e in people)
    assert 0 < expected_matched < len(emails)  # the generator plants unknown visitors
    meta = _meta(result)[TOUCHPOINTS_KEY]
    assert meta["touchpoints_matched"] == expected_matched
    assert meta["touchpoints_with_email"] == len(emails)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        con.execute("CREATE TEMP TABLE plain AS SELECT unnest(?) AS email", [sorted(set(emails))])
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'marketing' AND data_type IN ('VARCHAR', 'JSON')"
        ).fetchall()
        for table, column in columns:
            (hits,) = con.execute(
                f'SELECT count(*) FROM marketing."{table}" '
                f'WHERE lower(trim(CAST("{column}" AS VARCHAR))) IN (SELECT email FROM plain)'
            ).fetchone()
            assert hits == 0, f"plaintext email in marketing.{table}.{column}"
