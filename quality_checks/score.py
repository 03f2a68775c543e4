"""The quality score: pure math on counts (no database, no GX, no Dagster).

Definitions (also in docs/QUALITY.md):

* An expectation (rule) *checks* some values of a table: one per live row it applies to (a
  picklist rule checks the non-null values of its column, a not-null rule every row, a foreign
  key rule the non-null references, a freshness rule every row of the table).
* The score is **row-weighted**: every live row weighs one, however many values were checked on
  it. A row passes when every value checked on it passes. So

      table score      = passing rows / rows checked
      dimension score  = rows passing every rule of that dimension / rows that dimension checked
      overall score    = sum of passing rows / sum of rows checked, over all tables

  A value-weighted share (all checked values alike) is also reported (`value_pass_pct`) but not
  gated: with ~25 rules a table, it would let 40 % of rows carry one bad value and still read 98 %.
* A table passes when score >= gate (0.98) AND every hard rule (unique Id, valid references)
  holds at 100 % on the rows that flow downstream, i.e. the rows not written to
  `quality.quarantine_ids`. Quarantined rows still count as failing rows in the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quality_checks.rules import DIMENSIONS

ERROR = "ERROR"
WARN = "WARN"
OK = "OK"


@dataclass(frozen=True)
class RuleResult:
    name: str
    dimension: str
    column: str | None
    kind: str
    hard: bool
    soft: bool
    checked: int
    failed: int
    description: str = ""
    engine: str = "gx"

    @property
    def pass_pct(self) -> float:
        return 100.0 if self.checked == 0 else 100.0 * (self.checked - self.failed) / self.checked


@dataclass(frozen=True)
class RowCounts:
    """Row-level counts from the SQL pass over the live rows."""

    rows: int
    failed_rows: int
    dim_checked: dict[str, int]
    dim_failed: dict[str, int]
    hard_failed_rows: int
    quarantined_rows: int = 0
    # Hard-rule violations on rows NOT in quarantine (must be 0 for the table to pass).
    hard_failed_downstream: int = 0


@dataclass
class TableResult:
    object: str
    label: str
    rules: list[RuleResult]
    counts: RowCounts
    gate: float
    samples: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    engine: str = "gx"
    # Table-level findings that do not affect the score (a stale table), shown as WARN.
    findings: list[str] = field(default_factory=list)
    # "full" or "incremental", with why / how many rows (for the UI and the history).
    evaluation: str = "full"
    # a table of the same run scored below the gate (read while writing this result, so the
    # Dagster check need not open the warehouse again); None when not written
    run_blocked: bool | None = None
    # seconds per phase of the evaluation (open, plan, candidates, gx, sql_pass, ...)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return row_score(self.counts.rows, self.counts.failed_rows)

    @property
    def dimension_scores(self) -> dict[str, float]:
        return {
            d: row_score(self.counts.dim_checked[d], self.counts.dim_failed.get(d, 0))
            for d in DIMENSIONS
            if self.counts.dim_checked.get(d)
        }

    @property
    def value_pass_pct(self) -> float:
        checked = sum(r.checked for r in self.rules)
        failed = sum(r.failed for r in self.rules)
        return 100.0 if checked == 0 else 100.0 * (checked - failed) / checked

    @property
    def hard_ok(self) -> bool:
        return self.counts.hard_failed_downstream == 0

    @property
    def passed(self) -> bool:
        return not self.errors and self.score >= self.gate and self.hard_ok

    @property
    def severity(self) -> str:
        """ERROR: gate fails (blocks). WARN: passes with findings. OK: clean."""
        if not self.passed:
            return ERROR
        if self.counts.failed_rows or self.findings or any(r.failed for r in self.rules):
            return WARN
        return OK

    def why(self) -> str:
        """One line saying why the table fails (empty when it passes)."""
        reasons = []
        if self.errors:
            reasons.append("validation errors: " + "; ".join(self.errors)[:300])
        if self.score < self.gate:
            reasons.append(f"score {self.score:.2%} < gate {self.gate:.0%}")
        if not self.hard_ok:
            reasons.append(
                f"{self.counts.hard_failed_downstream} rows break a hard rule and are not "
                "quarantined"
            )
        return "; ".join(reasons)


def row_score(checked: int, failed: int) -> float:
    if checked <= 0:
        return 1.0
    if failed < 0 or failed > checked:
        raise ValueError(f"failed rows ({failed}) must be within 0..{checked}")
    return (checked - failed) / checked


def overall_score(results: list[TableResult]) -> float:
    rows = sum(r.counts.rows for r in results)
    failed = sum(r.counts.failed_rows for r in results)
    return row_score(rows, failed)


def overall_dimension_scores(results: list[TableResult]) -> dict[str, float]:
    out = {}
    for d in DIMENSIONS:
        checked = sum(r.counts.dim_checked.get(d, 0) for r in results)
        failed = sum(r.counts.dim_failed.get(d, 0) for r in results)
        if checked:
            out[d] = row_score(checked, failed)
    return out
