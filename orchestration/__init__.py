"""Dagster wiring for salesops. `definitions.py` is the one assembly point."""
