"""Salesforce extraction: requests/simple-salesforce client, dlt source, DuckDB load, assets.

`salesforce_assets` and `SalesforceResource` are imported lazily so the pure parts
(`assets.salesforce.soql`, `.fields`, `.convert`, `.client`, `.load`) do not pull Dagster in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SalesforceResource", "salesforce_assets"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from assets.salesforce import assets as _assets

        return getattr(_assets, name)
    raise AttributeError(name)
