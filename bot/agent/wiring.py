"""Builds the virtual agent from settings (called by the composition root only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient

from bot.agent.exchange import AgentExchange
from bot.agent.incident_notes import IncidentNotes
from bot.agent.llm import llm_writer
from bot.agent.service import AgentService, KnowledgeBase
from bot.agent.status import StatusFinder
from bot.agent.visibility import PublicChannels
from bot.db.database import Database
from bot.incidents.models import Incident
from bot.settings import Settings
from bot.slack.links import permalink
from knowledge.qa import DEFAULT_QA_THRESHOLD
from knowledge.retrieval import TextEmbedder

log = logging.getLogger(__name__)


def build_agent(
    settings: Settings,
    database: Database,
    clock: Callable[[], datetime],
    client: WebClient,
    responder: Callable[[str], bool],
    embedder: TextEmbedder | None,
    wake_outbox: Callable[[], None] = lambda: None,
) -> AgentExchange | None:
    """The agent, or None when ``INCIBOT_AGENT=false``. Without an embedder (``INCIBOT_KNOWLEDGE=false``) it
    matches words only. A configured FAQ folder that does not exist stops start-up; a missing sample one is
    left out (the runbooks remain). With ``INCIBOT_LLM_URL`` a model writes the answers from the passages."""
    if not settings.agent:
        return None
    faq = settings.effective_faq_dir
    if not faq.is_dir():
        if settings.faq_dir is not None:
            raise FileNotFoundError(f"INCIBOT_FAQ_DIR {faq} is not a directory")
        log.warning("virtual agent: no FAQ folder at %s; answering from the runbooks only", faq)
    runbooks = settings.effective_runbooks_dir
    threshold = DEFAULT_QA_THRESHOLD if settings.agent_threshold is None else settings.agent_threshold
    channels = PublicChannels(client)
    notes = IncidentNotes(database, channels.visible, lambda incident: post_link(client, incident))
    knowledge = KnowledgeBase(
        faq if faq.is_dir() else None, runbooks if runbooks.is_dir() else None, embedder, threshold, notes
    )
    service = AgentService(database, knowledge, StatusFinder(embedder, channels.visible), llm_writer(settings))
    return AgentExchange(
        database,
        clock,
        client,
        service,
        responder=responder,
        visible=channels.visible,
        rate=settings.agent_rate,
        wake_outbox=wake_outbox,
    )


def post_link(client: WebClient, incident: Incident) -> str | None:
    """The incident's post in Slack, once posted."""
    if not incident.slack_channel or not incident.slack_ts:
        return None
    return permalink(client, incident.slack_channel, incident.slack_ts)
