"""Multi-touch attribution: rule-based, Markov removal effect and Shapley models.

Pure algorithms (`journeys`, `rules`, `markov`, `shapley`, `models`) import only numpy/pandas;
the Dagster layer (`assets.attribution.assets`) is loaded lazily on first access of
`attribution_assets`, so the CLI (`python -m assets.attribution`) never imports Dagster.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attribution_assets"]


def __getattr__(name: str) -> Any:
    if name == "attribution_assets":
        from assets.attribution.assets import attribution_assets

        return attribution_assets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
