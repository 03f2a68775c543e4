"""The one assembly point: every asset, check, resource, job and schedule of salesops.

Project-wide policies live here, not on each asset:
- in-process executor: the steps of a run execute one after another in one process, so the DuckDB
  warehouse has a single writer (dagster.yaml also queues runs one at a time);
- freshness policies on the published assets (orchestration/policies.py).
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec, Definitions, in_process_executor

from assets.attribution import attribution_assets
from assets.dbt import DBT_RESOURCE_KEY, dbt_resource, get_dbt_assets
from assets.marketing import marketing_assets
from assets.salesforce import SalesforceResource, salesforce_assets
from forecasts.assets import all_assets as forecast_assets
from orchestration.jobs import MONTHLY_JOB, WEEKLY_JOB, build_jobs
from orchestration.policies import apply_project_policies
from orchestration.schedules import build_schedules
from quality_checks import quality_assets, quality_checks
from reports.assets import get_publish_assets

SALESFORCE_RESOURCE_KEY = "salesforce"

# Written by the blocking data-quality checks (not by an asset of its own); dbt staging reads it
# to leave out rows that fail a hard rule. Declared so it shows in its own group with a meaning.
QUARANTINE_IDS = AssetSpec(
    AssetKey(["quality", "quarantine_ids"]),
    group_name="quality",
    kinds={"duckdb"},
    description="Ids of raw rows failing a hard rule (duplicate Id, orphan key), replaced per "
    "table by each data-quality check; staging models leave these rows out of the marts.",
)


def build_definitions() -> Definitions:
    jobs = build_jobs()
    defs = Definitions(
        assets=[
            QUARANTINE_IDS,
            *salesforce_assets,
            *marketing_assets,
            get_dbt_assets(),
            *attribution_assets,
            *quality_assets,
            *forecast_assets,
            *get_publish_assets(),
        ],
        asset_checks=quality_checks,
        jobs=list(jobs.values()),
        schedules=build_schedules(jobs[WEEKLY_JOB], jobs[MONTHLY_JOB]),
        resources={
            SALESFORCE_RESOURCE_KEY: SalesforceResource(),
            DBT_RESOURCE_KEY: dbt_resource(),
        },
        executor=in_process_executor,
    )
    return apply_project_policies(defs)


defs = build_definitions()
