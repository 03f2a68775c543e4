"""Opening the warehouse: one place for the memory cap and for waiting on DuckDB's write lock."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from orchestration.settings import duckdb_config

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connect(
    path: Path | str, read_only: bool = False, wait_s: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse with `duckdb_config()`, waiting (up to `wait_s`) while another process
    holds the write lock (DuckDB: one writer per file); closed on exit."""
    deadline, delay = time.monotonic() + wait_s, 0.1
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            log.info("warehouse %s is locked by another process; retrying", path)
            time.sleep(delay)
            delay = min(2 * delay, 2.0)
    try:
        yield con
    finally:
        con.close()
