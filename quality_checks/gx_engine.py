"""Run a `TableSpec` as a Great Expectations 1.24 suite over DuckDB, with SQL pushdown.

GX 1.24 has no DuckDB dialect. Two problems follow and are handled here:

1. With duckdb-engine, GX's generic SQL path runs each metric query on a pooled connection,
   closes it, and only then fetches the rows: DuckDB has discarded the result by then, every
   metric bundle comes back empty and every expectation errors. GX keeps one persisted connection
   for sqlite/mssql/bigquery/databricks; `DuckDBExecutionEngine` does the same for DuckDB (one
   connection for the whole validation, closed and the engine disposed in `close()`).
2. A table asset with `schema_name` is deprecated in GX 1.14+, and on SQLAlchemy 2.1 the table
   path is fragile (it can read the unqualified table, i.e. `main.<table>`). We never use it: each
   table is a *query asset* `SELECT * FROM "<schema>"."<table>" WHERE <live rows>`, fully
   qualified and already restricted to live rows (is_deleted false/null). The integration tests
   plant a same-named table with other content in `main` and fail if GX reads it.

Everything is pushed down: GX compiles each expectation to aggregate SQL that DuckDB runs; no
table is pulled into pandas. Great Expectations is imported lazily (its import costs ~2-3 s in
a fresh process): `preload()` starts that import in a background thread, so a run can do its SQL
work meanwhile (DuckDB releases the GIL while it runs a query); `altair`, which GX imports only
for the charts of one expectation we never use, is deferred until something touches it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quality_checks.rules import (
    BETWEEN,
    FRESH,
    IN_SET,
    NOT_NULL,
    ROWS,
    UNIQUE,
    Rule,
    TableSpec,
    quote,
)

log = logging.getLogger(__name__)

DATASOURCE_TYPE = "salesops_duckdb"
# GX's ExpectColumnValuesToBeUnique joins the table to a per-value count subquery; the same rule
# as a custom-SQL expectation (`id IN (... GROUP BY id HAVING count(*) > 1)`) gives identical
# counts in a fraction of the time on DuckDB. Set True to use the native expectation.
NATIVE_UNIQUE = False
# Session connection string -> [SQLAlchemy engine on the run's DuckDB connection, GX execution
# engine over it (built on first use)] while the session is open.
_SHARED: dict[str, list[Any]] = {}


@dataclass(frozen=True)
class GXRuleResult:
    name: str
    success: bool
    failed: int
    checked: int | None  # None when GX does not report it (custom-SQL rules)
    observed: Any = None
    error: str | None = None


# Modules GX imports at start-up but uses only inside functions we never call (the charts of
# ExpectColumnKLDivergenceToBeLessThan): loaded on first attribute access instead (~0.3-0.6 s).
DEFERRED_IMPORTS = ("altair",)
_IMPORT_LOCK = threading.Lock()
_IMPORT_LOCK_DEFERRED = threading.RLock()
_PRELOAD_LOCK = threading.Lock()
_GX: list[Any] = []  # [the great_expectations module] once imported and set up
_preload: list[threading.Thread] = []


class _DeferredModule(types.ModuleType):
    """Stands in `sys.modules` for a module not executed yet: the first attribute it lacks
    (any name the real module defines, or `__path__` for a submodule import) imports the real
    module, which then replaces it in `sys.modules`; later reads go through to it."""

    def __getattr__(self, attr: str) -> Any:
        with _IMPORT_LOCK_DEFERRED:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
        return getattr(real, attr)


def _defer_import(name: str) -> None:
    """Put a stand-in for the top-level module `name` into sys.modules (see `_DeferredModule`):
    `import name` then costs nothing, and the module executes when first used. (The stdlib's
    `LazyLoader` does not help here: on Python 3.11 the import statement itself reads the
    module's `__spec__`, which executes it.)"""
    if name in sys.modules or "." in name:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _DeferredModule(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in


def _gx() -> Any:
    """Import GX once, offline (no usage statistics); thread-safe (see `preload`)."""
    if _GX:
        return _GX[0]
    with _IMPORT_LOCK:
        if not _GX:
            t0 = time.perf_counter()
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            for name in DEFERRED_IMPORTS:
                with contextlib.suppress(Exception):
                    _defer_import(name)
            import great_expectations as gx

            _register_duckdb_datasource()
            _GX.append(gx)
            log.debug(
                "Great Expectations imported in %.2fs (%s)",
                time.perf_counter() - t0,
                threading.current_thread().name,
            )
    return _GX[0]


def _preload_target() -> None:
    try:
        _gx()
    except Exception:  # the caller's own _gx() imports again and raises the real error
        log.debug("background import of Great Expectations failed", exc_info=True)


def preload() -> None:
    """Start importing GX in a background thread (once per process; returns at once).

    A run that will validate with GX calls this before its SQL work: the ~2-3 s import then
    overlaps that work, and the first `_gx()` waits only for what is left of it. Results do
    not depend on which thread imported GX.
    """
    with _PRELOAD_LOCK:
        if _GX or _preload:
            return
        thread = threading.Thread(target=_preload_target, name="salesops-gx-import", daemon=True)
        _preload.append(thread)
    thread.start()


@functools.cache
def _register_duckdb_datasource() -> type:
    """Define (once) a fluent SQL datasource whose engine keeps one DuckDB connection.

    A datasource whose connection string a `Session` registered in `_SHARED` runs every query
    on the session's engine instead of building engines from that string: GX then reads through
    a cursor of the run's own DuckDB connection (same database instance, same memory cap, no
    second open of the file).
    """
    from typing import Literal

    from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
    from great_expectations.execution_engine.sqlalchemy_execution_engine import (
        SqlAlchemyExecutionEngine,
    )

    class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
        """SqlAlchemyExecutionEngine that treats DuckDB as a persisted-connection dialect."""

        @contextlib.contextmanager
        def get_connection(self) -> Iterator[Any]:
            if self._connection is None or self._connection.closed:
                self._connection = self.engine.connect()
            yield self._connection

        def release(self) -> None:
            """Hand the connection back (ends its transaction); the engine stays usable."""
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None

        def close(self) -> None:
            self.release()
            self.engine.dispose()

    class SalesopsDuckDBDatasource(SQLDatasource):
        type: Literal["salesops_duckdb"] = "salesops_duckdb"  # type: ignore[assignment]

        @property
        def execution_engine_type(self) -> type[SqlAlchemyExecutionEngine]:
            return DuckDBExecutionEngine

        # The context may hand out copies of this object (rebuilt from its config), so a shared
        # engine is found by the connection string (unique per `Session`), not kept on `self`.
        def get_engine(self) -> Any:
            shared = _SHARED.get(str(self.connection_string))
            return shared[0] if shared else super().get_engine()

        def get_execution_engine(self) -> SqlAlchemyExecutionEngine:
            shared = _SHARED.get(str(self.connection_string))
            if not shared:
                return super().get_execution_engine()
            if shared[1] is None:
                shared[1] = DuckDBExecutionEngine(engine=shared[0], create_temp_table=False)
            return shared[1]

    return SalesopsDuckDBDatasource


@functools.cache
def _count_only_unexpected_rows() -> type:
    """UnexpectedRowsExpectation that only counts the unexpected rows.

    The stock expectation always computes two metrics from its query, the row count and a table
    of sample rows (kept only for result_format COMPLETE); on DuckDB the second runs the whole
    query again (the driver materializes it before GX takes 200 rows). Our samples come from the
    SQL pass, so this subclass depends on the count alone: half the scans for custom-SQL rules.
    """
    from great_expectations.expectations import UnexpectedRowsExpectation

    class ExpectNoUnexpectedRowsCounted(UnexpectedRowsExpectation):
        metric_dependencies = ("unexpected_rows_query.row_count",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            count = metrics["unexpected_rows_query.row_count"]
            return {"success": count == 0, "result": {"observed_value": count}}

    return _frozen_configuration(
        ExpectNoUnexpectedRowsCounted, "ExpectNoUnexpectedRowsCountedOnce", {}
    )


def _frozen_configuration(base: type, name: str, namespace: dict[str, Any]) -> type:
    """Subclass `base` (a GX expectation) as `name`, computing `configuration` once.

    GX rebuilds an expectation's `configuration` (a pydantic `dict()` of every field) each time
    it reads one kwarg: ~50 times per expectation and validation, a third of GX's time on a
    small batch. Ours never change after construction; any attribute set clears the copy. (GX
    registers expectations by class name: each subclass needs a name of its own.)
    """
    from great_expectations.compatibility import pydantic

    fget = base.configuration.fget

    def configuration(self: Any) -> Any:
        if self._salesops_configuration is None:
            self._salesops_configuration = fget(self)
        return self._salesops_configuration

    def __setattr__(self: Any, key: str, value: Any) -> None:  # noqa: N807
        base.__setattr__(self, key, value)
        if key != "_salesops_configuration":
            base.__setattr__(self, "_salesops_configuration", None)

    return type(
        name,
        (base,),
        {
            "__module__": __name__,
            "__annotations__": {"_salesops_configuration": Any},
            "_salesops_configuration": pydantic.PrivateAttr(None),
            "configuration": property(configuration),
            "__setattr__": __setattr__,
            **namespace,
        },
    )


@functools.cache
def _counts_only(name: str) -> type:
    """GX's column-map expectation `name` without its sample of unexpected values.

    In result format BASIC a column-map expectation also fetches up to 20 unexpected values
    (one more query per expectation, even with partial_unexpected_count 0); we read only the
    counts (element, missing, unexpected), and the samples come from the SQL pass. Dropping
    that metric leaves the counts and the outcome as they are and saves about a quarter of
    GX's time per table.
    """
    base = getattr(_gx().expectations, name)

    def get_validation_dependencies(
        self: Any, execution_engine: Any = None, runtime_configuration: Any = None
    ) -> Any:
        deps = base.get_validation_dependencies(self, execution_engine, runtime_configuration)
        deps.remove_metric_configuration(f"{self.map_metric}.unexpected_values")
        return deps

    return _frozen_configuration(
        base, f"{name}Counted", {"get_validation_dependencies": get_validation_dependencies}
    )


def expectation_for(rule: Rule, spec: TableSpec) -> Any:
    """The GX expectation object for a rule (its `meta` carries the rule name)."""
    E = _gx().expectations
    meta = {"rule": rule.name, "dimension": rule.dimension, "hard": rule.hard}
    if rule.kind == NOT_NULL:
        return _counts_only("ExpectColumnValuesToNotBeNull")(column=rule.column, meta=meta)
    if rule.kind == IN_SET:
        return _counts_only("ExpectColumnValuesToBeInSet")(
            column=rule.column, value_set=rule.gx_args["value_set"], meta=meta
        )
    if rule.kind == BETWEEN:
        return _counts_only("ExpectColumnValuesToBeBetween")(
            column=rule.column,
            min_value=rule.gx_args["min_value"],
            max_value=rule.gx_args["max_value"],
            meta=meta,
        )
    if rule.kind == UNIQUE and NATIVE_UNIQUE:
        return E.ExpectColumnValuesToBeUnique(column=rule.column, meta=meta)
    if rule.kind == FRESH:
        return E.ExpectColumnMaxToBeBetween(
            column=rule.column, min_value=rule.gx_args["min_value"], meta=meta
        )
    if rule.kind in (ROWS, UNIQUE):
        # {batch} is GX's placeholder for the asset's (live-rows) query. GX counts the rows of
        # this query (COUNT(*) over it); selecting only the record id keeps that narrow.
        # Window predicates cannot sit in WHERE, so those are computed in a projection first;
        # the others go straight to WHERE, where DuckDB turns IN / NOT IN into semi/anti joins.
        if rule.gx_args.get("_window"):
            query = (
                f"SELECT {spec.record_id} AS record_id FROM (SELECT *, (coalesce("
                f"{rule.fail_sql}, false) AND coalesce({rule.check_sql}, false)) AS "
                "__salesops_fail FROM {batch}) AS w WHERE __salesops_fail"
            )
        else:
            query = (
                f"SELECT {spec.record_id} AS record_id FROM {{batch}} WHERE "
                f"({rule.fail_sql}) AND ({rule.check_sql})"
            )
        return _count_only_unexpected_rows()(
            unexpected_rows_query=query, description=rule.description, meta=meta
        )
    raise ValueError(f"rule {rule.name}: unknown kind {rule.kind!r}")


def _read_result(rule: Rule, res: Any, rows: int) -> GXRuleResult:
    info = res.exception_info or {}
    # exception_info is either {raised_exception, exception_message, ...} or keyed by metric id.
    errors = []
    if info.get("raised_exception"):
        errors.append(str(info.get("exception_message")))
    for v in info.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            errors.append(str(v.get("exception_message")))
    r = res.result or {}
    if errors:
        return GXRuleResult(rule.name, False, 0, None, error="; ".join(errors)[:2000])
    if rule.kind == ROWS or (rule.kind == UNIQUE and not NATIVE_UNIQUE):
        observed = int(r.get("observed_value") or 0)
        return GXRuleResult(rule.name, bool(res.success), observed, None, observed)
    if rule.kind == FRESH:  # table-level: one check, failed when stale
        return GXRuleResult(
            rule.name, bool(res.success), 0 if res.success else 1, 1, r.get("observed_value")
        )
    if "element_count" not in r:
        return GXRuleResult(rule.name, False, 0, None, error=f"GX returned no counts: {r}")
    element = int(r["element_count"])
    missing = int(r.get("missing_count") or 0)
    checked = element if rule.kind == NOT_NULL else element - missing
    return GXRuleResult(rule.name, bool(res.success), int(r["unexpected_count"]), checked)


class Session:
    """One GX context and one datasource for every table a run validates.

    Building an ephemeral context, a datasource and its SQLAlchemy engine costs about as much
    as validating a small table, so a run (the quality step, `validate_tables`) opens one
    session and validates each table's batches through it. With `con` (the run's open DuckDB
    connection) GX queries run on a cursor of it: the file is opened once, and GX sees what the
    run committed (the candidate rows). Without `con` the datasource opens the file itself
    (callers with no connection open). `close()` disposes the engine (the file is released
    once the caller closes `con`).
    """

    def __init__(self, warehouse: Path | str, con: Any = None) -> None:
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from orchestration.settings import duckdb_config

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._key: str | None = None
        url = f"duckdb:///{warehouse}"
        if con is not None:
            import sqlalchemy as sa
            from duckdb_engine import ConnectionWrapper

            # a cursor of `con` is a connection to the same database instance (same config);
            # the query string only makes the key unique (a creator ignores the URL)
            self._key = url = f"{url}?salesops_session={uuid.uuid4().hex}"
            engine = sa.create_engine(
                url,
                creator=lambda: ConnectionWrapper(con.cursor()),
                poolclass=sa.StaticPool,
            )
            _SHARED[url] = [engine, None]
        try:
            self.ds = self.context.data_sources.add_or_update_salesops_duckdb(
                name="warehouse",
                connection_string=url,
                kwargs={"connect_args": {"config": duckdb_config()}},
            )
        except Exception:
            self.close()
            raise
        self._names: set[str] = set()

    def _asset_name(self, name: str) -> str:
        out, i = name, 1
        while out in self._names:  # the same table twice in one session
            i += 1
            out = f"{name}#{i}"
        self._names.add(out)
        return out

    def run_suite(
        self, spec: TableSpec, run_name: str = "salesops", query: str | None = None
    ) -> tuple[dict[str, GXRuleResult], dict[str, Any]]:
        """Validate `spec`'s rules; see the module function `run_suite`."""
        gx = self.gx
        row_rules = [r for r in spec.rules if r.kind != FRESH]
        batches: list[tuple[str, str, list[Rule]]] = []
        if row_rules:
            batches.append(("live_rows", query or spec.source_query(), row_rules))
        for r in spec.rules:
            if r.kind == FRESH:
                batches.append(
                    (
                        f"freshness_{r.column}",
                        f"SELECT max({quote(r.column)}) AS {quote(r.column)} FROM "
                        f"{spec.qualified} WHERE {spec.live_filter}",
                        [r],
                    )
                )
        out: dict[str, GXRuleResult] = {}
        stats: dict[str, Any] = {"evaluated_expectations": 0}
        try:
            for name, sql, rules in batches:
                asset = self.ds.add_query_asset(
                    name=self._asset_name(f"{spec.label}.{name}"), query=sql
                )
                by_meta = {rule.name: rule for rule in rules}
                suite = gx.ExpectationSuite(
                    name=f"{spec.label}.{name}.{run_name}",
                    expectations=[expectation_for(rule, spec) for rule in rules],
                )
                # Batch.validate runs the suite through GX's validator like a
                # ValidationDefinition does, without serializing suite, definition and result
                # into the (ephemeral) context's stores: nothing we read back.
                batch = asset.get_batch(asset.build_batch_request())
                result = batch.validate(
                    suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 0}
                )
                for res in result.results:
                    rule_name = (res.expectation_config.meta or {}).get("rule")
                    out[rule_name] = _read_result(by_meta[rule_name], res, 1)
                for k, v in (result.statistics or {}).items():
                    if isinstance(v, int | float) and k.endswith("expectations"):
                        stats[k] = stats.get(k, 0) + v
        finally:
            # end GX's read transaction: the next table's candidates are written meanwhile
            with contextlib.suppress(Exception):
                self.ds.get_execution_engine().release()
        return out, stats

    def close(self) -> None:
        shared = _SHARED.pop(self._key, None) if self._key else None
        if shared is not None:
            if shared[1] is not None:
                shared[1].close()
            shared[0].dispose()
            return
        ds = getattr(self, "ds", None)
        if ds is not None:
            with contextlib.suppress(Exception):
                ds.get_execution_engine().close()
            with contextlib.suppress(Exception):
                ds.get_engine().dispose()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_suite(
    warehouse: Path | str,
    spec: TableSpec,
    rows: int | None = None,
    run_name: str = "salesops",
    query: str | None = None,
    session: Session | None = None,
) -> tuple[dict[str, GXRuleResult], dict[str, Any]]:
    """Validate `spec` with GX against the DuckDB file; returns results by rule name + stats.

    Row rules run on a query asset over `query` (default: the table's live rows; the
    incremental evaluation passes its candidate rows). Freshness rules are table-level: each
    runs as ExpectColumnMaxToBeBetween on a one-row asset `SELECT max(col)` over the live rows.
    `session`: the run's GX session (see `Session`); without one, a session of its own opens
    exactly one SQLAlchemy engine/connection and disposes it before returning. (`rows` is
    accepted for compatibility and unused.)
    """
    if session is not None:
        return session.run_suite(spec, run_name, query)
    with Session(warehouse) as own:
        return own.run_suite(spec, run_name, query)
