"""Event payloads as flat table rows with a stable column set per event type.

Columns come from the event MODEL (not from the data), so every chunk of one type has the same
columns and types whether or not an optional nested value was present:

- a nested model (``Money``, ``SessionLimits``, ``Tariff``, ``CostBreakdown``) is flattened with
  ``_`` (``total_amount_minor``, ``total_currency``, ``limits_max_cost_amount_minor``);
- sequences and free-form values (``samples``, ``breakdown_lines``, ``tariff_elements``) are JSON
  text, which DuckDB reads with ``->>`` / ``json_extract``;
- datetimes are UTC timestamps (microseconds), UUIDs and decimals are text (decimals stay exact).

Each row also carries the envelope (``event_id``, ``event_type``, ``event_version`` as stored,
``schema_version`` after upcasting, ``occurred_at``, ``aggregate_id``, ``correlation_id``,
``causation_id``, ``producer``) and where it was read (``log_topic``, ``log_partition``,
``log_offset``, ``log_timestamp``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import re
import types
import typing
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union

import pyarrow as pa
from plugpay_events.envelope import Envelope, Event
from plugpay_events.registry import EVENT_TYPES
from pydantic import BaseModel

Kind = Literal["int", "float", "bool", "str", "ts", "json"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


@dataclass(frozen=True)
class Column:
    """One output column: its name, where its value is in the payload, and its kind."""

    name: str
    path: tuple[str, ...]
    kind: Kind
    description: str = ""


ENVELOPE_COLUMNS: tuple[Column, ...] = (
    Column("event_id", ("event_id",), "str", "envelope: unique event id"),
    Column("event_type", ("type",), "str", "envelope: event type"),
    Column("event_version", ("version",), "int", "envelope: version as stored (before upcasting)"),
    Column(
        "schema_version", ("schema_version",), "int", "version of the columns (after upcasting)"
    ),
    Column("occurred_at", ("occurred_at",), "ts", "envelope: when it happened (UTC)"),
    Column("aggregate_id", ("aggregate_id",), "str", "envelope: the Kafka key"),
    Column("correlation_id", ("correlation_id",), "str", "envelope: the flow it belongs to"),
    Column("causation_id", ("causation_id",), "str", "envelope: the event that caused it"),
    Column("producer", ("producer",), "str", "envelope: the service that wrote it"),
)
LOG_COLUMNS: tuple[Column, ...] = (
    Column("log_topic", ("topic",), "str", "topic it was read from (without test prefix)"),
    Column("log_partition", ("partition",), "int", "partition"),
    Column("log_offset", ("offset",), "int", "offset in the partition"),
    Column("log_timestamp", ("timestamp",), "ts", "log time: Kafka record time / appended_at"),
)
RESERVED = {c.name for c in ENVELOPE_COLUMNS + LOG_COLUMNS}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return _unwrap_optional(args[0])[0], optional
        return annotation, optional
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(annotation)[0])
    return annotation, False


def _leaf_kind(annotation: Any) -> Kind:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, bool) for v in values):
            return "bool"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        return "str"
    if origin is not None:  # tuple[...], list[...], dict[...], unions of several types
        return "json"
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return "bool"
        if issubclass(annotation, enum.Enum):
            return "str"
        if issubclass(annotation, int):
            return "int"
        if issubclass(annotation, float):
            return "float"
        if issubclass(annotation, dt.datetime) or annotation.__name__.endswith("Datetime"):
            return "ts"
        if issubclass(annotation, (str, uuid.UUID, decimal.Decimal, dt.date, dt.time)):
            return "str"
    return "json"


def model_columns(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Column]:
    """The flat columns of a pydantic model, nested models expanded."""
    columns: list[Column] = []
    for name, field in model.model_fields.items():
        annotation, _ = _unwrap_optional(field.annotation)
        path = (*prefix, name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            columns.extend(model_columns(annotation, path))
        else:
            columns.append(
                Column("_".join(path), path, _leaf_kind(annotation), field.description or "")
            )
    return columns


@cache
def event_columns(event_type: str) -> tuple[Column, ...]:
    """Every column of ``event_type``'s table: envelope, payload (current version), log."""
    cls = EVENT_TYPES[event_type]
    payload = model_columns(cls)
    names = [c.name for c in payload]
    clash = RESERVED.intersection(names) | {n for n in names if names.count(n) > 1}
    if clash:
        raise ValueError(f"{event_type}: flattened column names clash: {sorted(clash)}")
    return (*ENVELOPE_COLUMNS, *payload, *LOG_COLUMNS)


@cache
def arrow_schema(event_type: str) -> pa.Schema:
    """The Arrow schema of ``event_type``'s table."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in event_columns(event_type)])


def table_name(event_type: str) -> str:
    """``SessionCodeScanned`` → ``session_code_scanned`` (DuckDB table / view name)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if data is None:
            return None
        data = data.get(part) if isinstance(data, dict) else getattr(data, part, None)
    return data


def _cell(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    if kind == "ts":
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    return value


@dataclass(frozen=True)
class LogPosition:
    """Where a record was read."""

    topic: str
    partition: int
    offset: int
    timestamp: dt.datetime | None


def flatten(envelope: Envelope, event: Event, where: LogPosition) -> dict[str, Any]:
    """One row of ``envelope.type``'s table; ``event`` is the decoded (upcast) payload."""
    payload = event.model_dump(mode="json")
    row: dict[str, Any] = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.type,
        "event_version": envelope.version,
        "schema_version": type(event).version,
        "occurred_at": envelope.occurred_at,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": str(envelope.correlation_id),
        "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
        "producer": envelope.producer,
        "log_topic": where.topic,
        "log_partition": where.partition,
        "log_offset": where.offset,
        "log_timestamp": where.timestamp,
    }
    for column in event_columns(envelope.type):
        if column.name not in RESERVED:
            row[column.name] = _cell(_get(payload, column.path), column.kind)
    return row


UNDECODABLE = "_Undecodable"
UNDECODABLE_SCHEMA = pa.schema(
    [
        pa.field("log_topic", pa.string()),
        pa.field("log_partition", pa.int64()),
        pa.field("log_offset", pa.int64()),
        pa.field("log_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("error", pa.string()),
        pa.field("value", pa.string()),
    ]
)


def schema_for(event_type: str) -> pa.Schema:
    """Arrow schema of a type's table, including the table of undecodable records."""
    return UNDECODABLE_SCHEMA if event_type == UNDECODABLE else arrow_schema(event_type)


def to_arrow(event_type: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of one type as an Arrow table with the type's stable schema."""
    schema = schema_for(event_type)
    return pa.Table.from_pylist(rows, schema=schema)
