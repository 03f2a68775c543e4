"""Plain-data summaries of a load report: metadata values and markdown for the UI and logs."""

from __future__ import annotations

from typing import Any

from assets.marketing.loader import FAILED, LOADED, REPLACED, SKIPPED, KindReport


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """A GitHub-flavoured markdown table (pipes and newlines in values escaped)."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def files_markdown(report: KindReport) -> str:
    if not report.files:
        return f"No {report.kind} files in the landing folder."
    rows = []
    for f in report.files:
        ignored = f"ignored columns: {', '.join(f.ignored_columns)}" if f.ignored_columns else ""
        rows.append(
            (f.file, f.status, f.rows_read, f.rows_loaded, f.rows_quarantined, f.error or ignored)
        )
    columns = ["file", "status", "read", "loaded", "quarantined", "note"]
    return markdown_table(columns, rows)


def report_metadata(report: KindReport) -> dict[str, Any]:
    """Metadata for one kind as plain values (str / int / float / list / dict)."""
    meta: dict[str, Any] = {
        "files_loaded": len(report.with_status(LOADED)),
        "files_replaced": len(report.with_status(REPLACED)),
        "files_skipped": len(report.with_status(SKIPPED)),
        "files_failed": len(report.with_status(FAILED)),
        "files_missing": report.missing_files,
        "files_ignored": report.ignored_files,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "quarantine_reasons": report.quarantine_reasons,
        "quarantine_rows_total": report.quarantine_rows,
        "table_rows": report.table_rows,
        "seconds": report.seconds,
        "phase_seconds": report.phases,
        # False: totals, matched people and preview computed now; True: no file of this kind was
        # loaded, they are the ones stored by the last run that loaded one (summary_computed_at).
        "summary_reused": report.summary_reused,
    }
    if report.summary_computed_at is not None:
        meta["summary_computed_at"] = report.summary_computed_at.isoformat(timespec="seconds")
    if report.matched_people is not None:
        meta.update(report.matched_people)
    return meta


def preview_markdown(report: KindReport) -> str:
    if not report.preview_rows:
        return f"marketing.{report.kind} is empty."
    return markdown_table(report.preview_columns, report.preview_rows)
