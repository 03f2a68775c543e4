"""Dagster layer: one asset per Salesforce object, all materialized by one dlt pipeline run.

A `multi_asset` (not `@dlt_assets`): the dlt source is built at run time (paths from
SALESOPS_HOME, extra fields from config, `describe` validation), the metadata is ours (rows
loaded, total, deleted, pages, duration, cursor) and the same `extract_salesforce()` serves the
benchmark and tests. Subsetting runs only the selected objects' resources.
"""

import dagster as dg

from assets.salesforce.client import ENV_VARS, SalesforceSettings
from assets.salesforce.load import extract_salesforce
from sandbox.schema import OBJECT_NAMES, snake

GROUP = "salesforce"
KINDS = {"salesforce", "dlt", "duckdb"}
RESOURCE_KEY = "salesforce"
# Every warehouse writer shares this concurrency pool (limit 1 in dagster.yaml): one DuckDB writer.
WAREHOUSE_POOL = "warehouse"


def asset_key(sobject: str) -> dg.AssetKey:
    return dg.AssetKey(["salesforce", snake(sobject)])


KEY_TO_OBJECT: dict[dg.AssetKey, str] = {asset_key(o): o for o in OBJECT_NAMES}


class SalesforceResource(dg.ConfigurableResource):
    """Salesforce connection. Every field defaults to its SALESFORCE_* environment variable.

    Setting a secret here (rather than in the environment) puts it in run config: prefer env
    vars or `dg.EnvVar("...")`.
    """

    login_url: str | None = None
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    ca_file: str | None = None
    api_version: str | None = None

    def settings(self) -> SalesforceSettings:
        base = SalesforceSettings.from_env()
        overrides = {
            k: getattr(self, k)
            for k in (
                "login_url",
                "username",
                "password",
                "security_token",
                "client_id",
                "client_secret",
                "ca_file",
                "api_version",
            )
            if getattr(self, k)
        }
        return SalesforceSettings(**{**base.__dict__, **overrides})


class SalesforceExtractConfig(dg.Config):
    """Run config of the extraction."""

    extra_fields: list[str] = []  # "Opportunity.Tier__c", added to SALESOPS_SF_EXTRA_FIELDS
    full_refresh: bool = False  # drop the selected tables and cursors, extract everything


@dg.multi_asset(
    name="salesforce_extract",
    specs=[
        dg.AssetSpec(
            asset_key(o),
            group_name=GROUP,
            kinds=KINDS,
            description=f"Raw Salesforce {o} (dlt merge on Id, incremental on SystemModstamp; "
            "deleted rows kept with is_deleted = true).",
            metadata={"salesforce/object": o, "dagster/table_name": f"salesforce.{snake(o)}"},
            skippable=True,
        )
        for o in OBJECT_NAMES
    ],
    can_subset=True,
    pool=WAREHOUSE_POOL,
    description="Extract Salesforce objects into DuckDB schema `salesforce` "
    f"(credentials from {', '.join(ENV_VARS)}).",
)
def salesforce_extract(
    context: dg.AssetExecutionContext,
    config: SalesforceExtractConfig,
    salesforce: SalesforceResource,
):
    selected = [o for k, o in KEY_TO_OBJECT.items() if k in context.selected_asset_keys]
    result = extract_salesforce(
        selected,
        extra_fields=config.extra_fields,
        settings_=salesforce.settings(),
        full_refresh=config.full_refresh,
        log=context.log,
    )
    for sobject in selected:
        r = result.objects[sobject]
        yield dg.MaterializeResult(
            asset_key=asset_key(sobject),
            metadata={
                "rows_loaded": dg.MetadataValue.int(r.rows_loaded),
                "rows_unchanged": dg.MetadataValue.int(r.rows_unchanged),
                "dagster/row_count": dg.MetadataValue.int(r.total_rows),
                "total_rows": dg.MetadataValue.int(r.total_rows),
                "deleted_rows": dg.MetadataValue.int(r.deleted_rows),
                "pages": dg.MetadataValue.int(r.pages),
                "duration_s": dg.MetadataValue.float(r.seconds),
                "cursor": dg.MetadataValue.text(r.cursor or ""),
                "since": dg.MetadataValue.text(r.since or "(full)"),
                "api": dg.MetadataValue.text(r.mode),
                "load": dg.MetadataValue.text(r.load),
                "columns": dg.MetadataValue.int(len(r.columns)),
            },
        )


salesforce_assets = [salesforce_extract]
