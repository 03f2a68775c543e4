"""Validate warehouse tables: GX suite + SQL row-level pass, score, quarantine, history.

`validate_table` is the one entry point the Dagster checks, the CLI, the tests and the benchmark
call. Engines:

* `"gx"` (default): Great Expectations computes each expectation's checked/failed counts; the SQL
  pass counts the values every rule checks and locates the failing rows of the rules GX found
  failing (row-level union, samples, quarantine). Checked counts of every rule and failed counts
  of failing rules must agree exactly; a disagreement (the signature of GX reading another table)
  or a GX exception is a validation error, which fails the gate.
* `"sql"`: the same rules and score math from the SQL pass alone (no GX import).

Both engines evaluate incrementally when the state of the last evaluation allows
(quality_checks.incremental): only the candidate rows are validated (GX through a query asset
over them), with the same results as a full evaluation; a table with no candidate row is not
sent to GX at all (nothing to validate; its freshness comes from the SQL pass).

The tables of a run share one warehouse connection and one GX session reading through it
(`open_run`); `validate_table` without one opens its own for the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from quality_checks import incremental, sql_engine, store
from quality_checks.rules import FRESH, QualityConfig, TableSpec
from quality_checks.score import ERROR, RowCounts, RuleResult, TableResult

log = logging.getLogger(__name__)


class TableMissingError(RuntimeError):
    pass


def new_run_id() -> str:
    return "manual-" + uuid.uuid4().hex[:12]


def _sql_pass_spec(spec: TableSpec, gx_results: dict, config: QualityConfig) -> TableSpec:
    """The rules the SQL pass must locate rows for.

    With GX results, rules GX found clean contribute no failing rows, so their (possibly costly)
    predicates are not re-evaluated unless `config.recheck_clean_rules`; their checked counts are
    still compared with GX's (the wrong-table guard). Without GX results (sql engine, or GX
    failed), every rule is evaluated.
    """
    if not gx_results or config.recheck_clean_rules:
        return spec
    rules = []
    for r in spec.rules:
        g = gx_results.get(r.name)
        clean = g is not None and g.error is None and g.failed == 0 and g.success
        rules.append(dataclasses.replace(r, fail_sql="false") if clean else r)
    return spec.with_rules(rules)


class _Ticker:
    """Adds the seconds since the previous call to `phases[name]` (profiling per phase)."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.t
        self.t = now


class RunCache:
    """What the tables of one run share: the open warehouse connection, the catalog and the
    parents' load ids (the quality stage never writes raw tables, so they cannot change during
    a run) and one Great Expectations session reading through that connection (one open of the
    file and one GX context per run instead of per table). Open one with `open_run`."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection | None = None, warehouse: Path | str | None = None
    ) -> None:
        self.con = con
        self.warehouse = warehouse
        self.columns: dict[tuple[str, str], set[str]] | None = None
        self.parent_counts: dict[str, dict[str, int] | None] = {}
        self.schema_ready = False
        self._gx = None

    def table_columns(self, con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], set[str]]:
        if self.columns is None:
            self.columns = sql_engine.all_columns(con)
        return self.columns

    def gx_session(self, warehouse: Path | str):
        """The run's GX session (created on first use: GX is imported only when needed)."""
        if self._gx is None:
            from quality_checks import gx_engine

            self._gx = gx_engine.Session(warehouse, self.con)
        return self._gx

    def close_gx(self) -> None:
        if self._gx is not None:
            gx, self._gx = self._gx, None
            gx.close()


@contextlib.contextmanager
def open_run(warehouse: Path | str) -> Iterator[RunCache]:
    """One connection to the warehouse (and a GX session on it, when a table needs GX) for the
    tables of a run; both closed on exit, so the file is released."""
    with store.connect(warehouse) as con:
        cache = RunCache(con, warehouse)
        try:
            yield cache
        finally:
            cache.close_gx()


@dataclasses.dataclass
class Prepared:
    """A table planned and its candidate rows written (`prepare_table`), not yet validated."""

    spec: TableSpec  # restricted to the applicable rules
    skipped: list[str]
    fresh_rules: list
    track: bool
    plan: incremental.Plan
    source: str | None  # the candidate rows' query (incremental), else None (every live row)
    eval_spec: TableSpec
    phases: dict[str, float]
    seconds: float

    @property
    def needs_gx(self) -> bool:
        """Whether the GX engine validates anything of this table (not: incremental with no
        candidate row)."""
        return not (self.plan.incremental and not self.plan.candidates)


def prepare_table(
    warehouse: Path | str,
    spec: TableSpec,
    config: QualityConfig,
    write: bool,
    cache: RunCache,
) -> Prepared:
    """The SQL part of a table's evaluation that comes before GX: the applicable rules, the
    plan (full or incremental) and, incremental, the candidate rows (committed). Reads the
    table, its parents and its own quality state only, so tables can be prepared in any order
    before any of them is validated. Raises `TableMissingError`."""
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    tick = _Ticker(phases)
    con = cache.con
    cols = cache.table_columns(con).get((spec.schema, spec.table))
    if cols is None:
        raise TableMissingError(
            f"table {spec.label} does not exist in {warehouse}: materialize its raw asset "
            "first (the quality check validates what extraction loaded)"
        )
    spec, skipped = sql_engine.applicable(spec, cols, set(cache.table_columns(con)))
    for s in skipped:
        log.warning("%s: rule skipped: %s", spec.label, s)
    fresh_rules = sql_engine.freshness_rules(spec)
    row_spec = sql_engine.row_spec(spec)
    track = write and spec.load_id_sql is not None
    plan = incremental.plan(
        con,
        row_spec,
        cols,
        config.as_of,
        enabled=config.incremental and track,
        catalog=cache.table_columns(con),
        parent_cache=cache.parent_counts,
    )
    tick("plan")
    source = None
    eval_spec = row_spec
    if plan.incremental:
        eval_spec = incremental.windowed(row_spec)
        incremental.write_candidates(con, eval_spec, plan)
        source = incremental.materialize_candidates(con, eval_spec, plan)
        eval_spec = incremental.windowed(row_spec, restrict_parents=True)
        tick("candidates")
    return Prepared(
        spec,
        skipped,
        fresh_rules,
        track,
        plan,
        source,
        eval_spec,
        phases,
        time.perf_counter() - t0,
    )


def validate_table(
    warehouse: Path | str,
    spec: TableSpec,
    config: QualityConfig,
    run_id: str | None = None,
    checked_at: dt.datetime | None = None,
    engine: str = "gx",
    write: bool = True,
    quarantine: bool = True,
    cache: RunCache | None = None,
    prepared: Prepared | None = None,
) -> TableResult:
    """Validate one table of the DuckDB file `warehouse`; connections it opened are closed on
    return.

    write: append to quality.results/table_scores (and the rule catalog), keep the incremental
    state. quarantine: replace the object's rows in quality.quarantine_ids by this run's hard
    failures (requires write). Without quarantine, hard rules must hold on every live row.
    `config.incremental`: validate only the rows that can have changed since the last evaluation
    when its state allows (see quality_checks.incremental); the results are the same.
    `cache`: shared by the tables of one run (`open_run`, `validate_tables`): its open
    connection and GX session are used (and left open).
    `prepared`: this table's `prepare_table` of the same run (same `cache`, `config` and
    `write`), when the caller planned the tables first (`validate_run`).
    """
    if engine not in ("gx", "sql"):
        raise ValueError(f"engine must be 'gx' or 'sql', got {engine!r}")
    if cache is None or cache.con is None:
        if prepared is not None:
            raise ValueError("a prepared table is validated on the cache that prepared it")
        with open_run(warehouse) as run:
            return validate_table(
                warehouse, spec, config, run_id, checked_at, engine, write, quarantine, run
            )
    run_id = run_id or new_run_id()
    checked_at = checked_at or dt.datetime.now(dt.UTC)
    quarantine = quarantine and write and spec.quarantine
    if prepared is None:
        prepared = prepare_table(warehouse, spec, config, write, cache)
    t0 = time.perf_counter() - prepared.seconds
    spec, skipped, plan = prepared.spec, prepared.skipped, prepared.plan
    fresh_rules, track = prepared.fresh_rules, prepared.track
    source, eval_spec = prepared.source, prepared.eval_spec
    phases = dict(prepared.phases)
    tick = _Ticker(phases)
    con = cache.con
    log.info("quality %s: %s", spec.label, plan.describe())

    gx_results: dict = {}
    errors: list[str] = []
    # no candidate row: nothing can fail and GX has no row to validate (freshness, a
    # table-level max(), is evaluated by the SQL pass below either way)
    gx_skipped = engine == "gx" and plan.incremental and not plan.candidates
    if engine == "gx" and not gx_skipped:
        from quality_checks import gx_engine

        try:
            gx_results, _ = gx_engine.run_suite(
                warehouse,
                eval_spec.with_rules([*eval_spec.rules, *fresh_rules]),
                run_name=run_id,
                query=source,
                session=cache.gx_session(warehouse),
            )
        except Exception as e:  # a GX failure fails the gate; the SQL pass still reports
            log.exception("%s: Great Expectations validation failed", spec.label)
            errors.append(f"Great Expectations failed: {type(e).__name__}: {e}"[:2000])
        tick("gx")
    if write and not cache.schema_ready:
        store.ensure_schema(con)
        cache.schema_ready = True
    reuse = plan.reuse_checked if plan.incremental else None
    if reuse is not None and set(reuse.get("rules", {})) != {r.name for r in eval_spec.rules}:
        reuse = None
    counts = sql_engine.count(
        con,
        _sql_pass_spec(eval_spec, gx_results, config),
        source,
        incremental.new_rows_of(eval_spec, plan, source) if reuse is not None else None,
        reuse,
    )
    tick("sql_pass")
    # GX validated the candidate rows only: compare its checked counts with theirs.
    compare_checked = counts.checked
    if engine == "gx" and source is not None:
        _, compare_checked = sql_engine.checked_counts(con, eval_spec, source)
    tick("gx_compare")
    stale = sql_engine.freshness(con, spec)
    tick("freshness")
    rules: list[RuleResult] = []
    findings: list[str] = []
    for r in [*eval_spec.rules, *fresh_rules]:
        if r.kind == FRESH:
            is_stale, newest = stale[r.name]
            sql_checked, sql_failed = 1, int(is_stale)
            if is_stale:
                findings.append(
                    f"stale: newest {r.column} is {newest or 'missing'}, older than "
                    f"{r.gx_args['min_value']} ({r.description})"
                )
        else:
            sql_checked, sql_failed = counts.checked[r.name], counts.failed[r.name]
        checked, failed, used = sql_checked, sql_failed, "sql"
        if engine == "gx":
            g = gx_results.get(r.name)
            if g is None and gx_skipped:
                pass  # not sent to GX: no candidate row (see above)
            elif g is None:
                if gx_results:
                    errors.append(f"{r.name}: GX returned no result")
            elif g.error:
                errors.append(f"{r.name}: GX error: {g.error}")
            else:
                used = "gx"
                failed = g.failed
                gx_checked = g.checked
                want = sql_checked if r.kind == FRESH else compare_checked[r.name]
                if gx_checked is None:
                    gx_checked = want
                if failed != sql_failed or gx_checked != want:
                    errors.append(
                        f"{r.name}: GX and SQL disagree (GX checked={gx_checked} "
                        f"failed={failed}, SQL checked={want} failed={sql_failed}); GX may "
                        "have read another table"
                    )
        rules.append(
            RuleResult(
                r.name,
                r.dimension,
                r.column,
                r.kind,
                r.hard,
                r.soft,
                checked,
                failed,
                r.description,
                used,
            )
        )
    sample = sql_engine.samples(con, eval_spec, config.sample_per_rule, config.sample_max)
    tick("samples")
    quarantined = 0
    con.execute("BEGIN")
    try:
        if quarantine:
            quarantined = sql_engine.replace_quarantine(
                con, eval_spec, spec.object, checked_at.astimezone(dt.UTC).replace(tzinfo=None)
            )
        downstream = sql_engine.hard_failed_downstream(con, eval_spec, spec.object, quarantine)
        result = TableResult(
            object=spec.object,
            label=spec.label,
            rules=rules,
            counts=RowCounts(
                rows=counts.rows,
                failed_rows=counts.failed_rows,
                dim_checked=counts.dim_checked,
                dim_failed=counts.dim_failed,
                hard_failed_rows=counts.hard_failed_rows,
                quarantined_rows=quarantined,
                hard_failed_downstream=downstream,
            ),
            gate=config.gate,
            samples=sample,
            skipped=skipped,
            errors=errors,
            engine=engine,
            findings=findings,
            evaluation=plan.describe(counts.rows),
        )
        if track and not errors:
            incremental.save_state(
                con,
                eval_spec,
                plan,
                sql_engine.FAIL_TABLE,
                config.as_of,
                counts.rows,
                run_id,
                checked_at,
                {"rows": counts.rows, "rules": counts.checked, "dims": counts.dim_checked},
            )
        elif write:
            # an evaluation with errors leaves no state: the next one is full
            con.execute(f'DELETE FROM {store.SCHEMA}.eval_state WHERE "table" = ?', [spec.label])
            incremental.clear_candidates(con, spec)
        result.seconds = time.perf_counter() - t0
        if write:
            store.write_run(con, result, run_id, checked_at)
            result.run_blocked = bool(
                con.execute(
                    f"SELECT count(*) FROM {store.SCHEMA}.table_scores WHERE run_id = ? "
                    "AND severity = ?",
                    [run_id, ERROR],
                ).fetchall()[0][0]
            )
        con.execute("COMMIT")
        tick("write")
    except Exception:
        con.execute("ROLLBACK")
        if plan.incremental:
            with contextlib.suppress(duckdb.Error):
                incremental.clear_candidates(con, spec)
        raise
    finally:
        sql_engine.drop_temp(con)
    result.phases = {k: round(v, 4) for k, v in phases.items()}
    log.info(
        "quality %s: score %.2f%% (%d/%d rows fail, %d quarantined) -> %s in %.2fs",
        spec.label,
        100 * result.score,
        counts.failed_rows,
        counts.rows,
        quarantined,
        result.severity,
        result.seconds,
    )
    return result


def validate_run(
    warehouse: Path | str,
    specs: list[TableSpec],
    config: QualityConfig,
    cache: RunCache,
    run_id: str,
    checked_at: dt.datetime | None = None,
    engine: str = "gx",
    write: bool = True,
) -> Iterator[tuple[int, TableSpec, TableResult | Exception]]:
    """Validate `specs` on one run cache; yields (index in `specs`, spec, result or the
    exception that stopped that table) as each table is done (the others still run).
    `checked_at` None: each table's own time of validation.

    With the GX engine, GX's import starts in a background thread first (`gx_engine.preload`)
    and every table is prepared (plan, candidate rows: SQL) before any is validated, then the
    tables GX has nothing to validate (no candidate row) are finished, and the tables GX
    validates last: the import runs while DuckDB works. Tables are independent (each reads its
    own state, its raw table and raw parents), so the order changes no result.
    """
    if engine != "gx":
        for i, spec in enumerate(specs):
            try:
                yield (
                    i,
                    spec,
                    validate_table(
                        warehouse, spec, config, run_id, checked_at, engine, write, cache=cache
                    ),
                )
            except Exception as e:
                yield i, spec, e
        return
    from quality_checks import gx_engine

    gx_engine.preload()
    prepared: list[tuple[int, TableSpec, Prepared]] = []
    for i, spec in enumerate(specs):
        try:
            prepared.append((i, spec, prepare_table(warehouse, spec, config, write, cache)))
        except Exception as e:
            yield i, spec, e
    ordered = [p for p in prepared if not p[2].needs_gx] + [p for p in prepared if p[2].needs_gx]
    pending = {i for i, _, _ in ordered}
    try:
        for i, spec, prep in ordered:
            try:
                result: TableResult | Exception = validate_table(
                    warehouse,
                    spec,
                    config,
                    run_id,
                    checked_at,
                    engine,
                    write,
                    cache=cache,
                    prepared=prep,
                )
            except Exception as e:
                result = e
            pending.discard(i)
            yield i, spec, result
    finally:
        # the caller stopped early: drop the candidate rows of tables prepared, not validated
        for i, _, prep in ordered:
            if i in pending and prep.plan.incremental:
                with contextlib.suppress(duckdb.Error):
                    incremental.clear_candidates(cache.con, prep.spec)


def validate_tables(
    warehouse: Path | str,
    specs: list[TableSpec],
    config: QualityConfig,
    run_id: str | None = None,
    engine: str = "gx",
    write: bool = True,
    skip_missing: bool = True,
) -> list[TableResult]:
    """Validate several tables in one run (same run_id/checked_at, one connection and one GX
    session; see `validate_run`); missing tables are skipped. Results in the order of
    `specs`."""
    run_id = run_id or new_run_id()
    checked_at = dt.datetime.now(dt.UTC)
    out: dict[int, TableResult] = {}
    with open_run(warehouse) as cache:
        log.info("quality: validating %d tables", len(specs))
        for i, spec, result in validate_run(
            warehouse, specs, config, cache, run_id, checked_at, engine, write
        ):
            if isinstance(result, TableMissingError) and skip_missing:
                log.warning("quality: %s not in the warehouse; skipped", spec.label)
            elif isinstance(result, Exception):
                raise result
            else:
                out[i] = result
    return [out[i] for i in sorted(out)]
