"""Open an export (a Parquet or CSV folder, or a DuckDB file) as DuckDB tables/views.

Whatever the format, the connection has one relation per event type named in snake case
(``session_completed``, ``connector_status_changed``, ...) with the columns of
``flatten.event_columns``; a type with no rows is an empty table with the same columns, so
queries never depend on what happened to be exported. DuckDB files are opened read-only.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from plugpay_events.registry import EVENT_TYPES

from plugpay_analytics.flatten import UNDECODABLE, schema_for, table_name


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def open_dataset(path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over the export at ``path``."""
    path = Path(path)
    if path.is_file():
        db = duckdb.connect(str(path), read_only=True)
        db.execute("SET TimeZone = 'UTC'")
        return db
    if not path.is_dir():
        raise FileNotFoundError(f"no export at {path}")
    fmt = (path / "_format").read_text().strip() if (path / "_format").exists() else "parquet"
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    for event_type in [*sorted(EVENT_TYPES), UNDECODABLE]:
        name = table_name(event_type) if event_type != UNDECODABLE else "_undecodable"
        folder = path / event_type
        files = sorted(folder.glob(f"*.{fmt}")) if folder.is_dir() else []
        if not files:
            empty = schema_for(event_type).empty_table()  # noqa: F841  (read by DuckDB)
            db.execute(f'CREATE TABLE "{name}" AS SELECT * FROM empty')  # noqa: S608  (names from the registry)
            continue
        pattern = _sql_path(folder / f"*.{fmt}")
        if fmt == "parquet":
            reader = f"read_parquet('{pattern}', union_by_name = true)"
        else:
            schema = schema_for(event_type)
            columns = ", ".join(f"'{f.name}': '{_duck_type(f.type)}'" for f in schema)
            reader = f"read_csv('{pattern}', header = true, columns = {{{columns}}})"
        db.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {reader}')  # noqa: S608
    return db


def _duck_type(arrow_type: object) -> str:
    text = str(arrow_type)
    if text.startswith("timestamp"):
        return "TIMESTAMPTZ"
    return {"int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN"}.get(text, "VARCHAR")
