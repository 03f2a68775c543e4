"""orchestration.event_log: the instance's event log, pooled and without a per-event fsync."""

import sqlite3
import time

import pytest
from dagster import DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from orchestration import event_log
from orchestration.event_log import SalesopsEventLogStorage
from orchestration.settings import PROJECT_ROOT


def _event(run_id: str, i: int) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=f"message {i}",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ENGINE_EVENT.value,
            job_name="job",
            message=f"event {i}",
            event_specific_data=EngineEventData(),
        ),
    )


def test_project_instance_uses_it_in_dagsters_default_place(tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, SalesopsEventLogStorage)
        storage.store_event(_event("run-a", 0))
        assert [e.user_message for e in instance.all_logs("run-a")] == ["message 0"]
    # the file Dagster's own storage would have written, readable by it (history is kept)
    assert (tmp_path / "history" / "runs" / "run-a.db").exists()
    stock = SqliteEventLogStorage(base_dir=str(tmp_path / "history" / "runs"))
    assert [e.user_message for e in stock.get_logs_for_run("run-a")] == ["message 0"]


def test_same_events_as_stock_storage_and_normal_sync(tmp_path):
    ours = SalesopsEventLogStorage(base_dir=str(tmp_path / "ours"))
    stock = SqliteEventLogStorage(base_dir=str(tmp_path / "stock"))
    for i in range(30):
        ours.store_event(_event("r", i))
        stock.store_event(_event("r", i))
    got = [(e.user_message, e.dagster_event.message) for e in ours.get_logs_for_run("r")]
    want = [(e.user_message, e.dagster_event.message) for e in stock.get_logs_for_run("r")]
    assert got == want and len(got) == 30
    with ours.run_connection("r") as conn:
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
    with stock.run_connection("r") as conn:
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 2  # FULL
    # another process (a UI) reading the file sees every committed event
    with sqlite3.connect(tmp_path / "ours" / "r.db") as other:
        assert other.execute("select count(*) from event_logs").fetchone()[0] == 30
    ours.dispose()


def test_engines_are_bounded_and_wipe_closes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(event_log, "MAX_ENGINES", 3)
    st = SalesopsEventLogStorage(base_dir=str(tmp_path))
    for n in range(7):
        st.store_event(_event(f"run-{n}", n))
    assert len(st._engines) <= 3
    assert all(len(st.get_logs_for_run(f"run-{n}")) == 1 for n in range(7))
    st.wipe()
    assert set(st._engines) <= {"index"}  # wipe re-opens the index to empty it; no run file is open
    assert not list(tmp_path.glob("run-*.db"))
    st.store_event(_event("run-0", 99))  # a wiped run file is created again
    assert [e.user_message for e in st.get_logs_for_run("run-0")] == ["message 99"]
    st.dispose()


def test_missing_dagster_home_says_what_to_set(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(RuntimeError, match="DAGSTER_HOME"):
        SalesopsEventLogStorage.from_config_value(None, {})
