"""dbt attribution models on a sandbox org plus planted marketing touches.

Builds the attribution marts (and everything upstream) with dbt on a temp DuckDB, then checks
them against independent computations: the journeys against a pandas re-implementation of the
spec (people, window, order, markers), the rule-based credits against the Python models, and
the channel / ROI marts against the totals of the opportunities and the spend.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import duckdb
import numpy as np
import pandas as pd
import pytest

from assets.attribution.journeys import from_touches
from assets.attribution.models import Settings, touch_weights
from assets.attribution.rules import RULE_MODELS
from assets.dbt.project import PROFILES_DIR, PROJECT_DIR, dbt_executable
from orchestration.settings import OFFLINE_ENV
from sandbox.org import generate, load_into_duckdb

SALT = "attribution-test-salt"
LOOKBACK_DAYS = 120
HALF_LIFE_DAYS = 10
CHANNELS = ["paid_search", "paid_social", "email", "webinar", "events", "referral"]
pytestmark = pytest.mark.slow

SCALE = {
    "reps": 12,
    "accounts": 150,
    "opportunities": 300,
    "leads": 700,
    "contacts": 450,
    "activities": 500,
}


def email_hash(email: str) -> str:
    return hashlib.sha256((SALT + email.strip().lower()).encode()).hexdigest()


def plant_marketing(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(11)
    people = con.execute(
        "select email, created_date from salesforce.lead where email is not null "
        "union all select email, created_date from salesforce.contact where email is not null"
    ).df()
    rows = []
    for email, created in people.itertuples(index=False):
        for _ in range(int(rng.integers(0, 5))):
            when = pd.Timestamp(created).tz_convert("UTC") + pd.Timedelta(
                days=float(rng.uniform(-150, 250))
            )
            rows.append(
                (
                    f"tp{len(rows):06d}",
                    when,
                    CHANNELS[int(rng.integers(0, 6))],
                    f"c{int(rng.integers(0, 3))}",
                    "web_visit",
                    email_hash(email),
                )
            )
    rows.append(
        (
            "tp-nobody",
            pd.Timestamp("2026-01-01", tz="UTC"),
            "email",
            "c0",
            "web_visit",
            email_hash("nobody@example.com"),
        )
    )
    tp = pd.DataFrame(
        rows,
        columns=["touchpoint_id", "occurred_at", "channel", "campaign", "touch_type", "email_hash"],
    )
    months = pd.date_range("2023-01-01", "2026-05-01", freq="MS")
    spend = pd.DataFrame(
        [
            (m.date(), ch, "c0", float(100 + 10 * i), "USD", 1000, 10)
            for m in months
            for i, ch in enumerate(CHANNELS)
        ],
        columns=["date", "channel", "campaign", "spend", "currency", "impressions", "clicks"],
    )
    con.execute("create schema if not exists marketing")
    con.register("tp_df", tp)
    con.register("spend_df", spend)
    con.execute(
        "create table marketing.touchpoints as select touchpoint_id, "
        "occurred_at::timestamptz as occurred_at, channel, campaign, touch_type, email_hash, "
        "null::varchar as utm_source, null::varchar as utm_medium, null::varchar as utm_campaign "
        "from tp_df"
    )
    con.execute(
        "create table marketing.ad_spend as select date::date as date, channel, campaign, "
        "spend::decimal(18, 4) as spend, currency, impressions::bigint as impressions, "
        "clicks::bigint as clicks from spend_df"
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("attribution_dbt")
    warehouse = home / "warehouse.duckdb"
    org = generate(SCALE, seed=21, end="2026-06-01")
    load_into_duckdb(org, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        plant_marketing(con)
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "SALESOPS_HOME": str(home),
        "SALESOPS_EMAIL_SALT": SALT,
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
    }
    vars_ = (
        f"{{attribution_lookback_days: {LOOKBACK_DAYS}, "
        f"attribution_half_life_days: {HALF_LIFE_DAYS}}}"
    )
    proc = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--select",
            "+path:models/marts/attribution",
            "--indirect-selection",
            "cautious",
            "--vars",
            vars_,
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROFILES_DIR),
            "--target-path",
            str(home / "target"),
            "--log-path",
            str(home / "logs"),
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    con = duckdb.connect(str(warehouse), read_only=True)
    yield con
    con.close()


def expected_journeys(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The journey spec re-implemented in pandas from the raw tables."""
    opps = con.execute(
        "select opportunity_id, created_at, close_date, is_closed from marts.opportunities"
    ).df()
    leads = con.execute(
        "select converted_opportunity_id as opportunity_id, email, created_date, converted_date "
        "from salesforce.lead where not is_deleted and converted_opportunity_id is not null "
        "and nullif(trim(email), '') is not null"
    ).df()
    contacts = con.execute(
        "select r.opportunity_id, c.email, c.created_date "
        "from salesforce.opportunity_contact_role r "
        "join salesforce.contact c on r.contact_id = c.id "
        "where not r.is_deleted and not c.is_deleted and nullif(trim(c.email), '') is not null"
    ).df()
    touches = con.execute(
        "select touchpoint_id, occurred_at, channel, email_hash from marketing.touchpoints"
    ).df()
    touches["occurred_at"] = touches["occurred_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    naive = lambda s: pd.to_datetime(s, utc=True).dt.tz_localize(None)  # noqa: E731
    leads = leads.assign(
        email_hash=leads.email.map(email_hash),
        person_created_at=naive(leads.created_date),
        before=pd.to_datetime(leads.converted_date) + pd.Timedelta(days=1),
        kind="lead",
    )
    contacts = contacts.assign(
        email_hash=contacts.email.map(email_hash),
        person_created_at=naive(contacts.created_date),
        before=pd.NaT,
        kind="contact",
    )
    cols = ["opportunity_id", "email_hash", "person_created_at", "before", "kind"]
    people = pd.concat([leads[cols], contacts[cols]], ignore_index=True)
    m = people.merge(opps, on="opportunity_id").merge(touches, on="email_hash")
    start = m.created_at - pd.Timedelta(days=LOOKBACK_DAYS)
    end = pd.to_datetime(m.close_date) + pd.Timedelta(days=1)
    keep = (m.occurred_at >= start) & (m.occurred_at < end)
    keep &= m.before.isna() | (m.occurred_at < m.before)
    m = m[keep].drop_duplicates(["opportunity_id", "touchpoint_id"])
    m = m.sort_values(["opportunity_id", "occurred_at", "touchpoint_id"])
    m["touch_position"] = m.groupby("opportunity_id").cumcount() + 1
    created = people.groupby("opportunity_id").apply(
        lambda g: (
            g.loc[g.kind == "lead", "person_created_at"].min()
            if (g.kind == "lead").any()
            else g.person_created_at.min()
        ),
        include_groups=False,
    )
    m["person_at"] = m.opportunity_id.map(created)

    def last_before(limit_col: str) -> pd.Series:
        ok = m[m.occurred_at <= m[limit_col]]
        pos = ok.groupby("opportunity_id").touch_position.max()
        return m.opportunity_id.map(pos).fillna(1)

    m["is_lead_creation_touch"] = m.touch_position == last_before("person_at")
    m["is_opp_creation_touch"] = m.touch_position == last_before("created_at")
    return m


def test_journeys_follow_the_spec(built):
    got = built.execute(
        "select * from intermediate.int_opportunity_journeys "
        "order by opportunity_id, touch_position"
    ).df()
    want = expected_journeys(built)
    assert len(got) > 200, "the planted touches should give a few hundred journey rows"
    assert got.opportunity_id.nunique() > 50
    assert set(got.person_type) == {"lead", "contact"}
    pd.testing.assert_frame_equal(
        got[["opportunity_id", "touchpoint_id", "touch_position"]].reset_index(drop=True),
        want[["opportunity_id", "touchpoint_id", "touch_position"]].reset_index(drop=True),
        check_dtype=False,
    )
    for marker in ("is_lead_creation_touch", "is_opp_creation_touch"):
        np.testing.assert_array_equal(got[marker].to_numpy(), want[marker].to_numpy(), marker)
        assert (got.groupby("opportunity_id")[marker].sum() == 1).all()
    assert (got.groupby("opportunity_id").is_first_touch.sum() == 1).all()
    assert "tp-nobody" not in set(got.touchpoint_id)


def test_rule_based_credits_equal_the_python_models(built):
    journeys = built.execute(
        "select * from intermediate.int_opportunity_journeys "
        "order by opportunity_id, touch_position"
    ).df()
    credits = built.execute(
        "select opportunity_id, touch_position, attribution_model, credit "
        "from marts.attribution_touchpoints"
    ).df()
    j = from_touches(
        journeys.assign(converted=1),
        journey_col="opportunity_id",
        order_col="touch_position",
        time_col="occurred_at",
        lead_creation_col="is_lead_creation_touch",
        opp_creation_col="is_opp_creation_touch",
    )
    want = touch_weights(j, list(RULE_MODELS), Settings(half_life_days=HALF_LIFE_DAYS))
    for model, w in want.items():
        got = (
            credits[credits.attribution_model == model]
            .sort_values(["opportunity_id", "touch_position"])["credit"]
            .to_numpy()
        )
        np.testing.assert_allclose(got, w, rtol=0, atol=1e-12, err_msg=model)


def test_channel_attribution_reconciles_to_opportunities(built):
    opp = built.execute(
        "select count(*), sum(amount_usd), count(*) filter (where is_won), "
        "sum(amount_usd) filter (where is_won) from marts.opportunities"
    ).fetchone()
    totals = built.execute(
        "select attribution_model, sum(attributed_opportunities), sum(attributed_pipeline_usd), "
        "sum(attributed_won_deals), sum(attributed_bookings_usd) "
        "from marts.channel_attribution group by 1"
    ).fetchall()
    assert len(totals) == 6
    for model, n, pipeline, won, bookings in totals:
        assert n == pytest.approx(opp[0], abs=1e-6), model
        assert pipeline == pytest.approx(opp[1], rel=1e-9), model
        assert won == pytest.approx(opp[2], abs=1e-6), model
        assert bookings == pytest.approx(opp[3], rel=1e-9), model


def test_marketing_roi_ratios(built):
    spend_total = built.execute("select sum(spend) from marketing.ad_spend").fetchone()[0]
    per_model = built.execute(
        "select attribution_model, sum(spend_usd) from marts.marketing_roi group by 1"
    ).fetchall()
    assert len(per_model) == 6
    for _, spend in per_model:
        assert spend == pytest.approx(float(spend_total), rel=1e-9)
    rows = built.execute(
        "select * from marts.marketing_roi where spend_usd > 0 and attributed_won_deals > 0"
    ).df()
    assert len(rows) > 0
    np.testing.assert_allclose(rows.roas, rows.attributed_bookings_usd / rows.spend_usd)
    np.testing.assert_allclose(rows.cac_usd, rows.spend_usd / rows.attributed_won_deals)
    no_credit = built.execute(
        "select count(*) from marts.marketing_roi where attributed_opportunities = 0 "
        "and cost_per_opportunity_usd is not null"
    ).fetchone()[0]
    assert no_credit == 0
