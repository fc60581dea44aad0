"""Which handler failures are retried without limit and which count towards dead-lettering."""

from __future__ import annotations

import pytest
from plugpay_events.bus.port import RetryPolicy
from sqlalchemy.exc import DBAPIError, IntegrityError


class DriverError(Exception):
    """What asyncpg raises: the server's SQLSTATE on ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "sqlstate", ["57P01", "57P02", "57P03", "08006", "08001", "40001", "40P01", "53300"]
)
def test_postgres_saying_not_now_is_transient(sqlstate: str) -> None:
    # SQLAlchemy wraps the driver's error; the SQLSTATE is found through the chain.
    wrapped = DBAPIError("SELECT 1", {}, DriverError(sqlstate))
    assert RetryPolicy().is_transient(wrapped)
    chained = RuntimeError("handler failed")
    chained.__cause__ = wrapped
    assert RetryPolicy().is_transient(chained)


@pytest.mark.parametrize("sqlstate", ["23505", "22021", "42P01", "P0001"])
def test_postgres_saying_never_is_not_transient(sqlstate: str) -> None:
    assert not RetryPolicy().is_transient(IntegrityError("INSERT", {}, DriverError(sqlstate)))


def test_plain_bugs_are_not_transient_and_connections_are() -> None:
    assert not RetryPolicy().is_transient(ValueError("bad payload"))
    assert RetryPolicy().is_transient(ConnectionRefusedError(111, "refused"))
