"""Project-wide policies, applied once at the assembly point rather than on each asset."""

from __future__ import annotations

import warnings
from datetime import timedelta

from dagster import (
    AssetSelection,
    Definitions,
    FreshnessPolicy,
    PreviewWarning,
    apply_freshness_policy,
)

# Published tables analysts and finance read: refreshed weekly; warn after a missed Monday
# (8 days), fail after two (15 days).
WEEKLY_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(days=15), warn_window=timedelta(days=8)
)
# Monthly forecast outputs: warn after 32 days, fail after 63.
MONTHLY_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(days=63), warn_window=timedelta(days=32)
)


def apply_project_policies(defs: Definitions) -> Definitions:
    # map_resolved_asset_specs is the documented way to apply a policy to a selection; it is
    # marked preview in dagster 1.13, which says nothing about our use.
    warnings.filterwarnings("ignore", category=PreviewWarning, message=".*map_resolved_asset_specs")
    monthly = AssetSelection.key_substring("monthly")
    published = AssetSelection.groups("marts", "attribution", "forecasts", "reports")
    defs = defs.map_resolved_asset_specs(
        selection=published - monthly,
        func=lambda spec: apply_freshness_policy(spec, WEEKLY_FRESHNESS),
    )
    return defs.map_resolved_asset_specs(
        selection=published & monthly,
        func=lambda spec: apply_freshness_policy(spec, MONTHLY_FRESHNESS),
    )
