"""Records to rows and back by column name (plugpay_platform.rows)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from plugpay_platform.rows import column_values, record_from_row
from sqlalchemy import Column, Integer, MetaData, String, Table

things = Table(
    "things",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("kind", String(10)),
    Column("label", String(10)),
    Column("created_at", String(30), server_default="now"),  # no field: keeps its default
)


class Kind(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@dataclass(frozen=True)
class Thing:
    id: int
    kind: Kind
    label: str | None = None
    cached: bool = False  # no column: never written

    @property
    def title(self) -> str:
        return f"{self.kind.value} {self.label}"


def test_a_record_becomes_the_values_of_the_columns_it_has_fields_for() -> None:
    thing = Thing(7, Kind.LARGE, "box", cached=True)

    assert column_values(thing, things) == {"id": 7, "kind": Kind.LARGE, "label": "box"}


def test_a_row_becomes_a_record_with_the_converted_fields_given() -> None:
    row = SimpleNamespace(id=7, kind="large", label="box", created_at="then", cached=True)

    thing = record_from_row(Thing, row, kind=Kind(row.kind))

    assert thing == Thing(7, Kind.LARGE, "box", cached=True)


def test_a_row_without_a_fields_column_is_an_error_not_a_default() -> None:
    row = SimpleNamespace(id=7, kind="large", label="box")  # no ``cached``: not selected

    with pytest.raises(AttributeError):
        record_from_row(Thing, row, kind=Kind.LARGE)
