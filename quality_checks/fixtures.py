"""Raw-table DDL in the extractor's shape, for tests and the benchmark (no data generation here).

Column names are `sandbox.schema.snake(field)`, types follow the contract (string-like ->
VARCHAR, boolean -> BOOLEAN, currency/double/percent -> DOUBLE, int -> BIGINT, date -> DATE,
datetime -> TIMESTAMPTZ), plus dlt's `_dlt_load_id`, `_dlt_id`.
"""

from __future__ import annotations

import duckdb

from quality_checks.rules import quote
from sandbox.schema import OBJECTS, snake

SQL_TYPES = {
    "boolean": "BOOLEAN",
    "currency": "DOUBLE",
    "double": "DOUBLE",
    "percent": "DOUBLE",
    "int": "BIGINT",
    "date": "DATE",
    "datetime": "TIMESTAMPTZ",
}


def raw_table_ddl(object_name: str, schema: str = "salesforce", table: str | None = None) -> str:
    sobj = OBJECTS[object_name]
    cols = [f"{quote(snake(f.name))} {SQL_TYPES.get(f.type, 'VARCHAR')}" for f in sobj.fields]
    cols += ['"_dlt_load_id" VARCHAR', '"_dlt_id" VARCHAR']
    name = f"{quote(schema)}.{quote(table or snake(object_name))}"
    return f"CREATE TABLE {name} ({', '.join(cols)})"


def create_raw_tables(
    con: duckdb.DuckDBPyConnection, objects: list[str] | None = None, schema: str = "salesforce"
) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    for name in objects or list(OBJECTS):
        con.execute(raw_table_ddl(name, schema))


def create_mart_examples(con: duckdb.DuckDBPyConnection) -> None:
    """Two mart tables with known invariants (one broken group each) and two look-alikes."""
    con.execute("CREATE SCHEMA marts; CREATE SCHEMA attribution; CREATE SCHEMA salesforce")
    con.execute(
        """CREATE TABLE marts.pipeline_waterfall AS SELECT * FROM (VALUES
        (DATE '2025-01-06', '2025Q1', 'SMB', 100.00, 10.00, 0.00, 5.00, 1.00, 20.00, 4.00,
         0.00, 90.00),
        (DATE '2025-01-13', '2025Q1', 'SMB', 90.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00,
         90.01))
        AS t(week_start, close_quarter, segment, start_usd, created_usd, pulled_in_usd,
             increased_usd, decreased_usd, won_usd, lost_usd, slipped_out_usd, end_usd)"""
    )
    con.execute(
        """CREATE TABLE attribution.touch_credits AS SELECT * FROM (VALUES
        ('j1', 0, 'markov', 0.25), ('j1', 1, 'markov', 0.75),
        ('j2', 0, 'markov', 0.5), ('j2', 1, 'markov', 0.4),
        ('j1', 0, 'shapley', 1.0)) AS t(journey_id, position, model, credit)"""
    )
    con.execute("CREATE TABLE marts.other AS SELECT 1 AS credit_limit")
    con.execute("CREATE TABLE salesforce.opportunity AS SELECT 1.0 AS credit, 'x' AS model")


def merge_org_like_dlt(
    con: duckdb.DuckDBPyConnection, tables: dict, load_id: str, schema: str = "salesforce"
) -> dict[str, int]:
    """Load an org's tables ({API name: Arrow table}) the way dlt's merge on Id does.

    Rows that are new or differ from the stored row (any field) replace the stored row by Id and
    carry `load_id`; unchanged rows keep their earlier `_dlt_load_id`. Returns rows written per
    object. (For tests and benchmarks: what an incremental extraction leaves in the warehouse.)
    """
    written = {}
    for name, tbl in tables.items():
        target = f"{quote(schema)}.{quote(snake(name))}"
        renamed = tbl.rename_columns([snake(c) for c in tbl.column_names])
        con.register("__org_new", renamed)
        try:
            cols = ", ".join(quote(c) for c in renamed.column_names)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE __org_changed AS "
                f"SELECT {cols} FROM __org_new EXCEPT SELECT {cols} FROM {target}"
            )
        finally:
            con.unregister("__org_new")
        n = con.execute("SELECT count(*) FROM __org_changed").fetchall()[0][0]
        if n:
            con.execute(f'DELETE FROM {target} WHERE "id" IN (SELECT "id" FROM __org_changed)')
            con.execute(
                f"INSERT INTO {target} ({cols}, _dlt_load_id, _dlt_id) "
                f'SELECT {cols}, ?, "id" FROM __org_changed',
                [load_id],
            )
        con.execute("DROP TABLE __org_changed")
        written[name] = int(n)
    return written
