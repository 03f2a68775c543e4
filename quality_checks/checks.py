"""Dagster layer: one BLOCKING asset check per raw table, mart checks, and the report asset.

Every raw table keeps its own check (`<schema>/<table>:data_quality_gate`, blocking, with its
description and metadata), and all of them run in ONE step (`raw_tables_data_quality_gate`, a
subsettable `multi_asset_check`): one warehouse connection, one Great Expectations session, the
catalog and the parents' load counts read once for the run (per table the fixed cost was most of
an incremental run). Each table's evaluation writes quality.results / table_scores /
quarantine_ids and gives an `AssetCheckResult`: severity ERROR below the gate, WARN when the
table passes with findings (quarantined rows, soft findings, a stale table), passed when clean.
A result below the gate fails the step, and so stops every asset downstream of the raw tables
(dbt's one step and the report consume all of them, so this is what one step per table did).

The HTML report is rendered once per run by the `reports/data_quality_report` asset, which
depends on every raw table and so runs after their blocking checks. A run the gate blocks never
reaches that asset: there the gate step renders the report itself, once, after every table.

Run-time knobs: run tag `salesops/as_of` (ISO 8601; default env SALESOPS_AS_OF, else now) is the
reference time for freshness/plausibility; env SALESOPS_QUALITY_ENGINE = gx (default) | sql;
env SALESOPS_QUALITY_FRESHNESS_DAYS (one window for every table that has one; default: the
per-table windows of rules.FRESHNESS_WINDOWS); env SALESOPS_QUALITY_INCREMENTAL = 1 (default) |
0 (always evaluate whole tables).
"""

import datetime as dt
import logging
import os
from collections.abc import Iterator, Sequence

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from orchestration.settings import paths
from quality_checks.render import expectations_markdown, samples_markdown
from quality_checks.rules import FRESH, QualityConfig, TableSpec, all_raw_specs
from quality_checks.score import ERROR, TableResult
from quality_checks.validate import validate_table

log = logging.getLogger(__name__)

CHECK_NAME = "data_quality_gate"
# the step (op) that runs every raw table's gate; the e2e benchmark counts steps whose key ends
# in "_data_quality_gate" as the quality stage
GATES_STEP = "raw_tables_data_quality_gate"
MART_CHECK_NAME = "mart_invariants"
AS_OF_TAG = "salesops/as_of"
ENGINE_ENV = "SALESOPS_QUALITY_ENGINE"
AS_OF_ENV = "SALESOPS_AS_OF"
FRESHNESS_ENV = "SALESOPS_QUALITY_FRESHNESS_DAYS"
GATE_ENV = "SALESOPS_QUALITY_GATE"
INCREMENTAL_ENV = "SALESOPS_QUALITY_INCREMENTAL"
WAREHOUSE_POOL = "warehouse"
QUALITY_REPORT_KEY = dg.AssetKey(["reports", "data_quality_report"])
REPORTS_GROUP = "reports"


def parse_as_of(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(
            f"as-of {value!r} is not ISO 8601 (e.g. 2026-06-30T00:00:00Z); set the run tag "
            f"{AS_OF_TAG} or env {AS_OF_ENV} correctly"
        ) from e
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def config_for_run(
    tags: dict[str, str] | None = None,
    picklists: dict[tuple[str, str], tuple[str, ...]] | None = None,
) -> QualityConfig:
    as_of = parse_as_of((tags or {}).get(AS_OF_TAG) or os.environ.get(AS_OF_ENV))
    days = os.environ.get(FRESHNESS_ENV)
    gate = float(os.environ.get(GATE_ENV, "0.98"))
    return QualityConfig(
        as_of=as_of,
        gate=gate,
        freshness_max_age=dt.timedelta(days=float(days)) if days else None,
        picklists=picklists,
        incremental=os.environ.get(INCREMENTAL_ENV, "1").strip().lower() not in ("0", "false"),
    )


def _org_picklists() -> dict[tuple[str, str], tuple[str, ...]] | None:
    from quality_checks import store

    if not paths().warehouse.exists():
        return None
    with store.connect(paths().warehouse) as con:
        return store.read_picklists(con)


def engine_for_run() -> str:
    return os.environ.get(ENGINE_ENV, "gx")


def raw_asset_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.schema, spec.table])


def check_metadata(result: TableResult, report_path: str | None = None) -> dict:
    md: dict = {
        "score": dg.MetadataValue.float(round(result.score, 6)),
        "gate": dg.MetadataValue.float(result.gate),
        "rows": dg.MetadataValue.int(result.counts.rows),
        "failed_rows": dg.MetadataValue.int(result.counts.failed_rows),
        "quarantined_rows": dg.MetadataValue.int(result.counts.quarantined_rows),
        "hard_failed_downstream": dg.MetadataValue.int(result.counts.hard_failed_downstream),
        "value_pass_pct": dg.MetadataValue.float(round(result.value_pass_pct, 4)),
        "expectations": dg.MetadataValue.md(expectations_markdown(result)),
        "failing_rows_sample": dg.MetadataValue.md(samples_markdown(result)),
        "engine": dg.MetadataValue.text(result.engine),
        "evaluation": dg.MetadataValue.text(result.evaluation),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }
    if result.phases:  # where the seconds went (open, plan, candidates, gx, sql_pass, ...)
        md["phases"] = dg.MetadataValue.text(
            ", ".join(f"{k} {v:.2f}s" for k, v in result.phases.items())
        )
    fresh = [r for r in result.rules if r.kind == FRESH]
    if fresh:
        md["freshness"] = dg.MetadataValue.text(
            "WARN " + "; ".join(result.findings)
            if result.findings
            else "ok: " + "; ".join(r.description for r in fresh)
        )
    for dim, score in result.dimension_scores.items():
        md[f"score_{dim}"] = dg.MetadataValue.float(round(score, 6))
    if result.skipped:
        md["skipped_rules"] = dg.MetadataValue.md("\n".join(f"- {s}" for s in result.skipped))
    if result.errors:
        md["errors"] = dg.MetadataValue.md("\n".join(f"- {e}" for e in result.errors))
    if report_path:
        md["report"] = dg.MetadataValue.path(report_path)
    return md


def gate_line(result: TableResult) -> str:
    """The one log line a gated run prints."""
    return (
        f"QUALITY GATE BLOCKED {result.label}: {result.why()}; nothing downstream of "
        f"{result.label} runs in this run (see quality.quarantine and the data-quality report)"
    )


def to_check_result(
    result: TableResult, report_path: str | None = None, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    severity = (
        dg.AssetCheckSeverity.ERROR if result.severity == ERROR else (dg.AssetCheckSeverity.WARN)
    )
    stale = f"; WARN {result.findings[0]}" if result.findings else ""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=CHECK_NAME if asset_key is not None else None,
        passed=result.severity == "OK",
        severity=severity,
        metadata=check_metadata(result, report_path),
        description=(
            f"score {result.score:.2%} (gate {result.gate:.0%}); "
            f"{result.counts.failed_rows} of {result.counts.rows} rows fail a rule, "
            f"{result.counts.quarantined_rows} quarantined{stale}"
        )[:1000],
    )


def latest_report_path() -> str:
    """Where the report asset writes the current report (rendered once per run)."""
    return str(paths().reports / "data_quality" / "latest.html")


def _render_report(run_id: str | None) -> str | None:
    try:
        from reports.quality_report import write_report

        return str(write_report(paths().warehouse, paths().reports, run_id=run_id))
    except Exception:  # the report must never change a gate's outcome
        log.exception("data-quality report could not be written")
        return None


def _run_is_blocked(run_id: str) -> bool:
    """Whether a result of this run is below the gate (the report asset will not run)."""
    from quality_checks import store

    with store.connect(paths().warehouse) as con:
        return bool(
            con.execute(
                f"SELECT count(*) FROM {store.SCHEMA}.table_scores WHERE run_id = ? "
                "AND severity = ?",
                [run_id, ERROR],
            ).fetchall()[0][0]
        )


def _log_result(context: AssetCheckExecutionContext, result: TableResult) -> None:
    if result.severity == ERROR:
        context.log.error(gate_line(result))
    else:
        context.log.info(
            f"quality {result.label}: score {result.score:.2%} >= {result.gate:.0%}, "
            f"{result.counts.quarantined_rows} rows quarantined -> {result.severity} "
            f"[{result.evaluation}]"
        )
    for finding in result.findings:
        context.log.warning(f"quality {result.label}: WARN {finding}")


def run_check(context: AssetCheckExecutionContext, spec: TableSpec) -> dg.AssetCheckResult:
    """Validate one table in a check of its own (the mart checks)."""
    tags = dict(context.run.tags) if context.run else {}
    config = config_for_run(tags, _org_picklists())
    spec = next((s for s in all_raw_specs(config) if s.label == spec.label), spec)
    result = validate_table(
        paths().warehouse, spec, config, run_id=context.run.run_id, engine=engine_for_run()
    )
    report = latest_report_path()
    blocked = result.run_blocked
    if blocked is None:
        blocked = _run_is_blocked(context.run.run_id)
    if result.severity == ERROR or blocked:
        # the gate blocks this run: the report asset will not run, render here
        report = _render_report(context.run.run_id) or report
    _log_result(context, result)
    return to_check_result(result, report)


def run_gates(
    context: AssetCheckExecutionContext, gates: Sequence[tuple[dg.AssetKey, TableSpec]]
) -> Iterator[dg.AssetCheckResult]:
    """Validate the gates' tables in one step: one warehouse connection, one GX session, the
    parents' load counts and the catalog read once; one `AssetCheckResult` per table.

    The results are yielded once every table is validated (a run the gate blocks renders the
    report first, so each result can point at it). A table that cannot be validated (missing,
    an unexpected error) gets no result; the others still do, then the step fails with the
    reason (as the table's own step did before).
    """
    from quality_checks import store
    from quality_checks.validate import open_run, validate_run

    tags = dict(context.run.tags) if context.run else {}
    run_id = context.run.run_id
    warehouse = paths().warehouse
    engine = engine_for_run()
    if engine == "gx":  # GX's import runs while the picklists and the tables' SQL are read
        from quality_checks import gx_engine

        gx_engine.preload()
    finished: dict[int, tuple[dg.AssetKey, TableResult]] = {}
    failed: list[tuple[str, Exception]] = []
    with open_run(warehouse) as cache:
        config = config_for_run(tags, store.read_picklists(cache.con))
        current = {s.label: s for s in all_raw_specs(config)}
        specs = [current.get(spec.label, spec) for _, spec in gates]
        context.log.debug(f"quality: validating {len(specs)} tables")
        for i, spec, result in validate_run(warehouse, specs, config, cache, run_id, None, engine):
            if isinstance(result, Exception):  # the other tables are still validated
                log.error(
                    "quality %s: the gate could not validate the table",
                    spec.label,
                    exc_info=result,
                )
                failed.append((spec.label, result))
                continue
            _log_result(context, result)
            finished[i] = (gates[i][0], result)
    done = [finished[i] for i in sorted(finished)]
    report = latest_report_path()
    blocked = any(r.severity == ERROR or r.run_blocked for _, r in done)
    if blocked:  # the gate blocks this run: the report asset will not run, render here
        report = _render_report(run_id) or report
    for key, result in done:
        yield to_check_result(result, report, key)
    if failed:
        raise dg.Failure(
            description="the data-quality gate could not validate "
            + "; ".join(f"{label}: {type(e).__name__}: {e}" for label, e in failed)[:4000]
        ) from failed[0][1]


def _gate_spec(spec: TableSpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    hard = sorted({r.name.split(".", 1)[1] for r in spec.rules if r.hard})
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=key,
        blocking=True,
        description=(
            f"Data-quality gate for {spec.label}: {len(spec.rules)} expectations "
            f"(Great Expectations over DuckDB). Passes at >= 98% row-weighted score with every "
            f"hard rule ({', '.join(hard)}) at 100% on non-quarantined rows."
        ),
        metadata={"table": spec.label},
    )


def build_gates(
    specs: Sequence[TableSpec],
    name: str = GATES_STEP,
    asset_keys: dict[str, dg.AssetKey] | None = None,
) -> dg.AssetChecksDefinition:
    """One step running the blocking `data_quality_gate` check of every table in `specs`.

    Each table keeps its own check (key `<table asset>:data_quality_gate`, blocking, with its
    description and metadata); the step can run any subset of them (`can_subset`). A result
    below the gate fails the step, which stops every asset downstream of the step's checks.
    `asset_keys`: label -> asset key where it is not `[schema, table]`.
    """
    gates = [((asset_keys or {}).get(s.label) or raw_asset_key(s), s) for s in specs]

    @dg.multi_asset_check(
        specs=[_gate_spec(s, k) for k, s in gates],
        name=name,
        can_subset=True,
        pool=WAREHOUSE_POOL,
        description=(
            f"Blocking data-quality gates of {len(gates)} raw tables, validated in one step "
            "(one warehouse connection and one Great Expectations session)."
        ),
    )
    def _gates(context: AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        yield from run_gates(
            context, [(k, s) for k, s in gates if dg.AssetCheckKey(k, CHECK_NAME) in selected]
        )

    return _gates


def build_quality_check(spec: TableSpec, asset_key: dg.AssetKey | None = None):
    """A blocking asset check for one raw table, in a step of its own."""
    key = asset_key or raw_asset_key(spec)
    return build_gates(
        [spec], name=f"{spec.schema}__{spec.table}_{CHECK_NAME}", asset_keys={spec.label: key}
    )


def build_quality_checks(
    specs: Sequence[TableSpec] | None = None, name: str = GATES_STEP
) -> list[dg.AssetChecksDefinition]:
    """The blocking gates of `specs` (default: every raw table), all in one step."""
    specs = specs or all_raw_specs(config_for_run())
    return [build_gates(specs, name)]


def build_mart_check(asset_key: dg.AssetKey, schema: str, table: str):
    """A blocking check on a mart: its invariants are discovered from its columns at run time."""

    @dg.asset_check(
        asset=asset_key,
        name=MART_CHECK_NAME,
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=(
            f"Mart invariants of {schema}.{table} found by its columns (waterfall balances, "
            "attribution credits sum to 1); must hold on every row."
        ),
    )
    def _check(context: AssetCheckExecutionContext) -> dg.AssetCheckResult:
        from quality_checks import store
        from quality_checks.marts import discover_mart_specs

        with store.connect(paths().warehouse) as con:
            specs = [s for s in discover_mart_specs(con) if (s.schema, s.table) == (schema, table)]
        if not specs:
            return dg.AssetCheckResult(
                passed=True,
                metadata={"note": dg.MetadataValue.text("no known mart invariant applies")},
            )
        return run_check(context, specs[0])

    return _check


def _raw_keys() -> list[dg.AssetKey]:
    return [raw_asset_key(s) for s in all_raw_specs(config_for_run())]


@dg.asset(
    key=QUALITY_REPORT_KEY,
    group_name=REPORTS_GROUP,
    kinds={"html", "duckdb"},
    # after every raw table and so after all their blocking checks: rendered once per run
    deps=_raw_keys(),
    description=(
        "Self-contained HTML data-quality report (scores, expectations, failing samples, trend "
        "over runs) from quality.results, rendered once per run after every raw table's "
        "blocking check; validates any mart tables with known invariants first."
    ),
)
def quality_report(context: AssetExecutionContext) -> dg.MaterializeResult:
    from quality_checks import store
    from quality_checks.marts import discover_mart_specs
    from quality_checks.validate import validate_tables
    from reports.quality_report import write_report

    with store.connect(paths().warehouse) as con:
        mart_specs = discover_mart_specs(con)
    if mart_specs:
        validate_tables(
            paths().warehouse,
            mart_specs,
            config_for_run(dict(context.run.tags)),
            context.run.run_id,
            engine_for_run(),
        )
    path = write_report(paths().warehouse, paths().reports, run_id=None)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "mart_tables_checked": dg.MetadataValue.int(len(mart_specs)),
        }
    )
