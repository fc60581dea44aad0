"""Migration steps that create whole tables as a service's ``tables.py`` defines them.

Such a step is a no-op where the tables exist (a database that an earlier step made from the
current metadata has them), like ``migrations.columns_added`` for columns.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Table


def tables_created(*tables: Table) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(upgrade, downgrade)`` of a migration that creates ``tables`` in order, where missing
    (with their indexes), and drops them again, last first."""

    def upgrade() -> None:
        from alembic import op

        bind = op.get_bind()
        for table in tables:
            table.create(bind, checkfirst=True)

    def downgrade() -> None:
        from alembic import op

        bind = op.get_bind()
        for table in reversed(tables):
            table.drop(bind, checkfirst=True)

    return upgrade, downgrade
