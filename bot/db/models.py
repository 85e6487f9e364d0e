"""Imports every model module so that ``Base.metadata`` is complete (for Alembic and tests)."""

from bot.agent import handover_models as agent_handover
from bot.agent import models as agent
from bot.changes import models as changes
from bot.db.base import Base
from bot.incidents import models as incidents
from bot.ingest import models as ingest
from bot.knowledge import models as knowledge
from bot.registry import models as registry
from bot.remediation import models as remediation
from bot.rootcause import models as rootcause
from bot.scheduling import models as scheduling
from bot.slack import models as slack

__all__ = [
    "Base",
    "agent",
    "agent_handover",
    "changes",
    "incidents",
    "ingest",
    "knowledge",
    "registry",
    "remediation",
    "rootcause",
    "scheduling",
    "slack",
]
