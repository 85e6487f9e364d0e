"""The migrations build exactly the schema the ORM models describe (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.db.database import Database
from bot.db.models import Base


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        database.dispose()
    assert differences == []
