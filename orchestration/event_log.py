"""Dagster's SQLite event log, without its per-event connection and fsync.

Every Dagster event of a run (step start/output/success, each planned and reported asset
materialization and check evaluation, every `context.log` line) is one insert into the run's
SQLite file, and asset events a second one into the index file. The stock
`SqliteEventLogStorage` creates a new SQLAlchemy engine and connection per insert and commits
with an fsync (SQLite's default `synchronous=FULL`): 5-15 ms per event on this machine. A weekly
run writes about 800 events (the dbt step alone about 550: ~75 assets and ~150 checks, each
planned, output and reported), so that was seconds of every run, whatever the data size.

This subclass keeps one engine (a pooled connection) per database file for the few most recent
files, and opens its connections with `PRAGMA synchronous=NORMAL`. The files are in WAL mode
(Dagster creates them so), where NORMAL is SQLite's recommended setting: a commit is atomic and
survives a crash of the process; only a power loss can lose the last commits (never corrupt the
file). Everything else (schema, migrations, file layout, the UI's file watcher) is Dagster's.

Enabled in `dagster.yaml` (`event_log_storage`); the files are where Dagster's default puts them
(`$DAGSTER_HOME/history/runs/`), so an existing home keeps its history.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

# engines kept open: the index file, the running run's file and a few a UI reads
MAX_ENGINES = 6


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class SalesopsEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with pooled engines per file and `synchronous=NORMAL` commits."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> SalesopsEventLogStorage:
        base_dir = config_value.get("base_dir")
        if not base_dir:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise RuntimeError(
                    "DAGSTER_HOME is not set: the event log lives in $DAGSTER_HOME/history/runs "
                    "(set DAGSTER_HOME, or event_log_storage.config.base_dir in dagster.yaml)"
                )
            base_dir = os.path.join(home, "history", "runs")
        return cls(base_dir=base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            pool_size=1,
            max_overflow=2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _on_connect)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            _, old = self._engines.popitem(last=False)
            old.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # the run files are deleted: no open connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()
