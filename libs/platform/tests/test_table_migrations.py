"""tables_created: creates tables where missing, in order, and drops them last first."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from plugpay_platform.database import asyncpg_url
from plugpay_platform.table_migrations import tables_created
from sqlalchemy import Column, Connection, ForeignKey, Index, Integer, MetaData, Table, inspect
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.infra

metadata = MetaData()
parent = Table("parents", metadata, Column("id", Integer, primary_key=True))
child = Table(
    "children",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, ForeignKey("parents.id"), nullable=False),
    Index("ix_children_parent", "parent_id"),
)


def _run(connection: Connection, step: Callable[[], None]) -> None:
    with Operations.context(MigrationContext.configure(connection)):
        step()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_tables_created_is_the_upgrade_and_downgrade_pair(database_url: str) -> None:
    upgrade, downgrade = tables_created(parent, child)  # the child needs its parent first
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run, upgrade)
            await connection.run_sync(_run, upgrade)  # again: they exist, nothing happens
            assert {"parents", "children"} <= await connection.run_sync(_tables)
            indexes = await connection.run_sync(
                lambda c: [i["name"] for i in inspect(c).get_indexes("children")]
            )
            assert indexes == ["ix_children_parent"]
            await connection.run_sync(_run, downgrade)  # the child first: its key refers on
            assert not {"parents", "children"} & await connection.run_sync(_tables)
    finally:
        await engine.dispose()
