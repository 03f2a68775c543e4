"""Bookings forecasts: statistical models, pipeline-weighted forecast, backtests, ledger.

Pure logic lives in `metrics`, `models`, `backtest`, `series`, `pipeline`, `engine` and `ledger`
(plain pandas/numpy in, plain data out). `assets` is the thin Dagster layer; `cli` backs
`python -m forecasts`.
"""
