"""Alembic, one history per service, run programmatically at start-up or from the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config
from plugpay_events.outbox import OutboxTables
from sqlalchemy import Connection, MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine

from plugpay_platform.database import asyncpg_url


def alembic_config(script_location: Path, database_url: str) -> Config:
    """An Alembic config for a service's ``migrations/`` folder, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", asyncpg_url(database_url).replace("%", "%%"))
    return config


# Alembic's ``context`` is process-global: one upgrade at a time in a process (the embedded
# mode starts five services at once); across processes the advisory lock in run_env applies.
_upgrade_lock = threading.Lock()


def _upgrade(config: Config) -> None:
    with _upgrade_lock:
        command.upgrade(config, "head")


async def upgrade_to_head(script_location: Path, database_url: str) -> None:
    """Apply a service's migrations; concurrent starters are serialised by an advisory lock."""
    await asyncio.to_thread(_upgrade, alembic_config(script_location, database_url))


def run_env(target_metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            compare_type=True,
        )
        with context.begin_transaction():
            # Several replicas may start at once; only one migrates at a time.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('alembic'))")
            context.run_migrations()

    async def run_async() -> None:
        url = context.config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def create_platform_tables(op: object, *tables: object) -> None:
    """Create library-owned tables (outbox, inbox) from a service's first migration."""
    from sqlalchemy import Table

    bind = op.get_bind()  # type: ignore[attr-defined]
    for table in tables:
        assert isinstance(table, Table)
        table.create(bind, checkfirst=True)


def outbox_and_inbox(tables: OutboxTables) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(upgrade, downgrade)`` of every service's first migration: the library-owned outbox
    and inbox tables, as ``tables`` (the service's ``outbox_tables``) define them."""

    def upgrade() -> None:
        from alembic import op

        create_platform_tables(op, tables.outbox, tables.inbox)

    def downgrade() -> None:
        from alembic import op

        op.drop_table("inbox")
        op.drop_table("outbox")

    return upgrade, downgrade


# table -> column -> its SQL type and constraints, as ``ALTER TABLE … ADD COLUMN`` takes them
Columns = Mapping[str, Mapping[str, str]]


def add_columns(columns: Columns) -> None:
    """Add ``columns`` where missing (a database made from the current metadata has them)."""
    from alembic import op

    for table_name, added in columns.items():
        for name, kind in added.items():
            op.execute(f"ALTER TABLE {table_name} ADD COLUMN IF NOT EXISTS {name} {kind}")


def drop_columns(columns: Columns) -> None:
    """Undo :func:`add_columns`, last column first."""
    from alembic import op

    for table_name, added in reversed(list(columns.items())):
        for name in reversed(list(added)):
            op.execute(f"ALTER TABLE {table_name} DROP COLUMN IF EXISTS {name}")


def columns_added(columns: Columns) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(upgrade, downgrade)`` of a migration that only adds ``columns``."""
    return (lambda: add_columns(columns)), (lambda: drop_columns(columns))
