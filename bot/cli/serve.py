"""``incibot serve`` and ``incibot db upgrade``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from pydantic import SecretStr

from bot.cli.worker import freeze_startup_heap
from bot.db import migrate
from bot.ingest import token_file
from bot.knowledge.wiring import KnowledgeConfigurationError
from bot.loopback import is_loopback
from bot.remediation.catalogue import CatalogueError
from bot.runtime import Runtime, open_database
from bot.settings import Settings
from bot.slack.integration import SlackConfigurationError
from bot.supervisor import WorkerProcess

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the bot (webhooks, worker, jobs)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.set_defaults(handler=run_serve)


def upgrade_database(settings: Settings, _args: argparse.Namespace) -> int:
    database = open_database(settings)
    try:
        migrate.upgrade(database)
        print(f"database at revision {migrate.current_revision(database)}")
    finally:
        database.dispose()
    return 0


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    tokens = settings.ingest_tokens
    if not tokens:
        if not is_loopback(args.host):
            print(
                f"incibot: refusing to listen on {args.host} without INCIBOT_INGEST_TOKENS; "
                "configure a token, or listen on 127.0.0.1",
                file=sys.stderr,
            )
            return 2
        token, created = token_file.load_or_create(settings.token_file)
        if created:
            print(f"Created an ingest token in {settings.token_file}: {token}", flush=True)
        else:
            print(f"Using the ingest token in {settings.token_file}", flush=True)
        tokens = ((None, SecretStr(token)),)
    database = open_database(settings)
    if not migrate.is_at_head(database):
        database.dispose()
        print("incibot: the database schema is not current; run `incibot db upgrade`", file=sys.stderr)
        return 1
    try:
        runtime = Runtime.build(
            settings, ingest_tokens=tokens, database=database, bot_url=f"http://{args.host}:{args.port}"
        )
    except (SlackConfigurationError, KnowledgeConfigurationError, CatalogueError) as exc:
        database.dispose()
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    worker = _worker_process(settings, runtime)
    freeze_startup_heap()  # the web process holds the embedding model too (search, the agent)
    config = uvicorn.Config(
        runtime.asgi_app(frozenset({"web"})),
        host=args.host,
        port=args.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    print(f"incibot starting on http://{args.host}:{args.port}", flush=True)
    if worker is not None:
        worker.start()
    try:
        _Server(config).run()
    finally:
        if worker is not None:
            worker.stop()
    return 0


def _worker_process(settings: Settings, runtime: Runtime) -> WorkerProcess | None:
    """The child that processes deliveries, unless this is an ingest-only replica."""
    if not settings.process_deliveries:
        log.warning("processing is off (INCIBOT_PROCESS_DELIVERIES=false): deliveries are stored only")
        return None
    env = dict(os.environ)
    port = runtime.slack.standin_port
    if port is not None:
        env["INCIBOT_STANDIN_PORT"] = str(port)  # the worker sends to the stand-in this process serves
    return WorkerProcess(env)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT it shut down cleanly for exits 0.

    uvicorn re-raises the signal after its graceful shutdown, so a clean stop would exit 143.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
