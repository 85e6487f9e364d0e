"""``incibot worker``: applies deliveries, sends the Slack outbox and runs the periodic jobs.

``incibot serve`` starts one as its child; run it by hand beside ingest-only replicas
(``INCIBOT_PROCESS_DELIVERIES=false``) to scale them apart.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from bot.knowledge.wiring import KnowledgeConfigurationError
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack.integration import SlackConfigurationError
from bot.threads import name_this_thread

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 1.0


def register(commands: Any) -> None:
    parser = commands.add_parser("worker", help="process deliveries and send Slack messages (serve starts one)")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    parser.set_defaults(handler=run_worker)


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    name_this_thread("incibot-worker")  # what ps and top show for this process (its main thread's name)
    lower_priority(settings.worker_nice)
    try:
        runtime = Runtime.build(settings.model_copy(update={"process_deliveries": True}))
    except (SlackConfigurationError, KnowledgeConfigurationError) as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.start(frozenset({"worker"}), before_threads=freeze_startup_heap)
    try:
        while not stop.wait(PARENT_CHECK_SECONDS):
            if args.parent_pid is not None and os.getppid() != args.parent_pid:
                log.error("the serve process %d is gone; stopping", args.parent_pid)
                break
    finally:
        runtime.stop()
    return 0


def lower_priority(nice: int) -> None:
    """Give this process's CPU time to ingestion when they compete: the worker catches up afterwards, a webhook
    that waits makes its sender retry. ``nice`` is added to the current niceness (0: unchanged); threads started
    later inherit it (the embedding prefetch lowers itself further)."""
    if nice > 0:
        os.nice(nice)
        log.info("worker niceness %d", os.getpriority(os.PRIO_PROCESS, 0))


def freeze_startup_heap() -> None:
    """Keep what start-up built (the embedding model alone is ~500,000 objects, alive as long as the process) out
    of the cyclic collector: otherwise each full collection walks all of it, 300 ms or more, and on SQLite it
    often does so inside a write transaction, while every webhook waits for the lock."""
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen: %d objects left out of garbage collection", gc.get_freeze_count())
