"""The shared timestamp columns (plugpay_platform.columns) compile to what tables.py had."""

from __future__ import annotations

from plugpay_platform.columns import created_at, recorded_at, updated_at
from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable


def test_the_stamps_are_utc_aware_not_null_and_default_to_now() -> None:
    table = Table(
        "rows", MetaData(), Column("id", Integer, primary_key=True), created_at(), updated_at()
    )

    ddl = str(CreateTable(table).compile(dialect=postgresql.dialect()))

    assert "created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL" in ddl
    assert "updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL" in ddl


def test_each_call_is_a_new_column_so_tables_can_share_the_shape() -> None:
    first, second = recorded_at("seen_at"), recorded_at("seen_at")

    assert first is not second and first.name == second.name == "seen_at"
