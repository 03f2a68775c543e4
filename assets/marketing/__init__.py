"""Marketing landing files (ad spend, touchpoints) -> DuckDB schema `marketing`.

Pure loader: `assets.marketing.loader.load_landing`; Dagster layer: `assets.marketing.assets`.
`from assets.marketing import marketing_assets` imports Dagster on first use only, so the pure
modules (contract, reader, validate, loader) stay cheap to import.
"""

from typing import Any

__all__ = ["marketing_assets"]


def __getattr__(name: str) -> Any:
    if name == "marketing_assets":
        from assets.marketing.assets import marketing_assets

        return marketing_assets
    raise AttributeError(f"module 'assets.marketing' has no attribute {name!r}")
