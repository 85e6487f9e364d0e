"""The composition root: builds every part of incibot from settings, and nothing else does.

Tests build a :class:`Runtime` with their own settings and clock; ``incibot serve`` builds one and hands
its web app to uvicorn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import SecretStr
from starlette.applications import Starlette

from bot.agent.handover import Handover, HelpDesk, ProblemReports
from bot.agent.notify import ResolvedNotifier
from bot.agent.wiring import build_agent
from bot.background import BackgroundLoop
from bot.changes.http import ChangesEndpoint
from bot.classification.live import LiveClassification
from bot.classification.wiring import build_classification
from bot.correlation.prefetch import EmbeddingPrefetch
from bot.correlation.wiring import build_correlation, build_prefetch
from bot.db.checkpoints import WalCheckpointer
from bot.db.database import Database
from bot.incidents.corrections import build_corrections
from bot.incidents.service import IncidentListener, IncidentService
from bot.ingest.auth import TokenVerifier
from bot.ingest.http import IngestEndpoint
from bot.ingest.store import DeliveryStore
from bot.ingest.writer import DeliveryWriter
from bot.knowledge.documents import DocumentRecorder
from bot.knowledge.wiring import Knowledge
from bot.metrics import Metrics
from bot.processing.worker import ProcessingWorker
from bot.remediation.wiring import Remediation, build_remediation
from bot.rootcause.live import LiveRootCause
from bot.rootcause.wiring import build_rootcause
from bot.scheduling.nightly import NightlyTraining
from bot.scheduling.scheduler import Maintenance
from bot.settings import Settings
from bot.slack.integration import SlackIntegration
from bot.slack.notifier import ChannelRouter, SlackNotifier
from bot.standin.workspace import Workspace
from bot.web.app import build_web_app
from knowledge.embeddings import Embedder

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Role = Literal["web", "worker"]
WORKER_IDLE_POLL = 0.2  # seconds; in its own process the worker cannot be woken by the web process
ALL_ROLES: frozenset[Role] = frozenset({"web", "worker"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_database(settings: Settings) -> Database:
    return Database(settings.effective_database_url, lock_timeout=settings.db_lock_timeout)


def build_incident_service(
    settings: Settings,
    clock: Clock = utc_now,
    embedder: Embedder | None = None,
    classification: LiveClassification | None = None,
    rootcause: LiveRootCause | None = None,
) -> IncidentService:
    """The incident service with every listener, for every caller (serve, worker, CLI): whoever changes an
    incident, the change reaches Slack (posts, edits and replies through the outbox) and search (the document
    that is re-indexed), and an incident whose alerts changed waits for the classifier (told first: a new
    incident's post is routed by its category). Documents are kept even with search off. ``classification``: the
    runtime's; by default one that never loads its model unless asked to predict (the CLI never is). ``rootcause``:
    the runtime's live ranking (with search as its history source); by default one without it, which marks the
    incidents whose alerts changed so that the worker ranks them again."""
    notifier = SlackNotifier(
        ChannelRouter(settings.routes, settings.alerts_channel),
        clock,
        min_severity=settings.min_severity,
        reminder_after=settings.unacked_reminder,
        incident_channels=settings.incident_channels,
    )
    correlation = build_correlation(settings, embedder)
    classification = classification or build_classification(settings, lambda: open_database(settings), embedder)
    rootcause = rootcause or build_rootcause(settings, clock)
    listeners: list[IncidentListener] = [DocumentRecorder(clock), rootcause, notifier]
    if settings.agent:  # "notify me when resolved": a resolve DMs the subscribers
        listeners.append(ResolvedNotifier(clock))
    preparers: list[Callable[[Database], int]] = [rootcause.prepare]
    if classification is not None:
        listeners.insert(0, classification)
        preparers.insert(0, classification.prepare)
    service = IncidentService(correlation, settings.reopen_window, clock, listeners, preparers)
    if classification is not None:
        classification.attach(service)
    rootcause.attach(service)
    return service


@dataclass
class Runtime:
    settings: Settings
    database: Database
    metrics: Metrics
    incidents: IncidentService
    writer: DeliveryWriter
    worker: ProcessingWorker
    maintenance: Maintenance
    ingest: IngestEndpoint
    slack: SlackIntegration
    knowledge: Knowledge | None  # None: INCIBOT_KNOWLEDGE=false
    bot_url: str | None = None
    classification: LiveClassification | None = None  # None: INCIBOT_CLASSIFICATION=false
    remediation: Remediation | None = None  # actions on incidents, their approvals and runs (always built by build())
    changes: ChangesEndpoint | None = None  # POST /changes (always built by build())
    prefetch: EmbeddingPrefetch | None = None  # embeds queued alerts' texts ahead of the worker (learned correlation)
    checkpointer: WalCheckpointer | None = None  # SQLite: the WAL checkpoints, off every commit's path

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        ingest_tokens: tuple[tuple[str | None, SecretStr], ...] | None = None,
        clock: Clock = utc_now,
        database: Database | None = None,
        bot_url: str | None = None,
        embedder: Embedder | None = None,
        standin_workspace: Workspace | None = None,
    ) -> Runtime:
        """Wire incibot. ``ingest_tokens`` overrides the configured ones (``serve``'s token file);
        ``bot_url`` is where Slack (or the stand-in's driver) reaches this bot; ``embedder`` a loaded model
        to use instead of loading the configured one; ``standin_workspace`` what the stand-in starts with
        (stand-in mode; default: ``#incidents`` with the bot in it)."""
        database = database or open_database(settings)
        metrics = Metrics(database, clock)
        knowledge = Knowledge.build(settings, database, embedder) if settings.knowledge else None
        shared = embedder or (knowledge.embedder if knowledge is not None else None)
        classification = build_classification(settings, lambda: database, shared)
        search = knowledge.service if knowledge is not None else None
        rootcause = build_rootcause(settings, clock, search)
        incidents = build_incident_service(settings, clock, shared, classification, rootcause)
        corrections = build_corrections(incidents, settings, shared)
        slack = SlackIntegration.build(settings, database, incidents, corrections, clock, search, standin_workspace)
        remediation = build_remediation(  # a bad INCIBOT_ACTIONS_FILE stops start-up
            settings, database, clock, resolve_group=slack.resolve_group, notify=slack.remediation_notice
        )
        slack.attach_remediation(remediation.service)
        permissions = slack.services.permissions
        slack.services.agent = build_agent(
            settings, database, clock, slack.client, permissions.is_responder, shared, slack.outbox.wake
        )
        worker = ProcessingWorker(
            database, incidents, metrics, clock, max_attempts=settings.max_attempts, idle_poll=WORKER_IDLE_POLL
        )
        prefetch = build_prefetch(  # the classifier predicts ahead for what it embedded, on its thread
            database, incidents.correlation, classification.predict_ahead if classification is not None else None
        )
        writer = DeliveryWriter(
            database,
            DeliveryStore(settings.ignore_alertnames),
            clock,
            on_commit=lambda _stored: _wake(worker, prefetch),
        )
        slack.services.handover = Handover(ProblemReports(database, writer), HelpDesk(database), settings.help_channel)
        verifier = TokenVerifier(settings.ingest_tokens if ingest_tokens is None else ingest_tokens)
        ingest = IngestEndpoint(verifier, writer, metrics, settings.max_body_bytes)
        changes = ChangesEndpoint(verifier, database, metrics, clock, settings.max_body_bytes)
        maintenance = Maintenance(
            database,
            incidents,
            clock,
            retention=settings.retention,
            quiet_after=settings.quiet_after,
            nightly=NightlyTraining(database, clock, at=settings.nightly_training)
            if settings.nightly_training
            else None,
        )
        return cls(
            settings,
            database,
            metrics,
            incidents,
            writer,
            worker,
            maintenance,
            ingest,
            slack,
            knowledge,
            bot_url,
            classification,
            remediation=remediation,
            changes=changes,
            prefetch=prefetch,
            checkpointer=WalCheckpointer(database) if database.is_sqlite else None,
        )

    def asgi_app(self, roles: frozenset[Role] = ALL_ROLES) -> Starlette:
        """The web app; its lifespan starts and stops this runtime in ``roles``."""
        return build_web_app(
            self.ingest,
            self.slack,
            self.database,
            self.metrics,
            on_startup=lambda: self.start(roles),
            on_shutdown=self.stop,
            changes=self.changes,
        )

    def start(self, roles: frozenset[Role] = ALL_ROLES, *, before_threads: Callable[[], None] | None = None) -> None:
        """Start the parts of ``roles``: ``web`` takes deliveries and Slack requests; ``worker`` applies
        deliveries, sends the Slack outbox and runs the periodic jobs (``serve`` runs it in a child process,
        so processing never competes with ingestion for the interpreter).

        What the roles load (indexes, the classifier) is loaded first; then ``before_threads`` runs (the worker
        process freezes its start-up heap there: a full collection holds the interpreter for hundreds of
        milliseconds, and a thread holding SQLite's write lock would wait that long for it, with every webhook
        behind it); then the threads start."""
        if self.knowledge is not None:
            if "worker" in roles:
                self.knowledge.indexer.open()  # brings (heals) the indexes up to date
            elif "web" in roles:
                self.knowledge.start_web()
        if "worker" in roles and self.classification is not None and self.settings.process_deliveries:
            self.classification.load()  # once, here: a model whose card does not match stops start-up
        if before_threads is not None:
            before_threads()
        if self.checkpointer is not None:
            self.checkpointer.start()
        if "web" in roles:
            self.writer.start()
            self.slack.start_web(self.bot_url)
        if "worker" in roles:
            if self.knowledge is not None:
                self.knowledge.indexer.start()
            if self.settings.process_deliveries:
                self.worker.start()
                if self.prefetch is not None:
                    self.prefetch.start()
            else:
                log.warning("processing is off (INCIBOT_PROCESS_DELIVERIES=false): deliveries are stored only")
            self.maintenance.start()
            if self.remediation is not None and self.remediation.service.enabled:
                self.remediation.runner.start()  # its own pool: runs never delay alert processing
            self.slack.start_worker()
        log.info("incibot started (%s; database: %s)", "+".join(sorted(roles)), self.database.dialect)

    def stop(self) -> None:
        """Stop taking deliveries, commit what is queued, finish the batch in hand, release the database."""
        self.writer.stop()
        self.worker.stop()
        if self.prefetch is not None:
            self.prefetch.stop()
        self.maintenance.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if self.remediation is not None:
            self.remediation.runner.stop()
        self.slack.stop()
        if self.knowledge is not None:
            self.knowledge.indexer.stop()
        self.database.dispose()
        log.info("incibot stopped cleanly")


def _wake(*loops: BackgroundLoop | None) -> None:
    for loop in loops:
        if loop is not None:
            loop.wake()
