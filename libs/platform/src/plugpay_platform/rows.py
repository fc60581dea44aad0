"""Between a repository's dataclass records and its tables' rows, by column name.

A record's field and its column share a name; where a stored value is not the field's value
as it is (an enum, a JSON document), the repository converts that one and names it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)
else:
    R = TypeVar("R")


def record_from_row(cls: type[R], row: Any, **converted: Any) -> R:
    """A ``cls`` (a dataclass) from ``row``'s columns named as its fields; ``converted`` gives
    the fields whose column holds another type (``kind=AccountKind(row.kind)``)."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in converted}
    return cls(**values, **converted)


def column_values(record: DataclassInstance, table: Table) -> dict[str, Any]:
    """``record``'s fields that are columns of ``table``, for an INSERT's ``values``: columns
    it has no field for keep their defaults, fields that are no column are left out."""
    names = {f.name for f in fields(record)}
    return {c.name: getattr(record, c.name) for c in table.columns if c.name in names}
