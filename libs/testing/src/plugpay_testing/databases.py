"""Scratch databases on the tests' PostgreSQL server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _on_server(postgres_url: str, statement: str) -> None:
    admin = await asyncpg.connect(_plain(postgres_url))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_database(postgres_url: str, *, prefix: str = "t_") -> AsyncIterator[str]:
    """A new, empty database on ``postgres_url``'s server, dropped when the block ends; yields
    its URL in ``postgres_url``'s form. The ``database_url`` fixture is one; a test that needs a
    second (another service's) opens its own."""
    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    await _on_server(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_url, name)
    finally:
        await _on_server(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
