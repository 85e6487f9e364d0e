"""Imports every model module so that ``Base.metadata`` is complete (for Alembic and tests)."""

from bot.db.base import Base
from bot.incidents import models as incidents
from bot.ingest import models as ingest
from bot.knowledge import models as knowledge
from bot.registry import models as registry
from bot.scheduling import models as scheduling
from bot.slack import models as slack

__all__ = ["Base", "incidents", "ingest", "knowledge", "registry", "scheduling", "slack"]
