"""Runtime.start: what a role loads is loaded before any of its threads runs.

The worker process freezes its start-up heap between the two (``before_threads``): a full collection holds the
interpreter for hundreds of milliseconds, and a thread that holds SQLite's write lock meanwhile (the maintenance
run starts at once) would stall every webhook that long.
"""

from __future__ import annotations

import threading
from pathlib import Path

from bot.runtime import Runtime
from bot.settings import Settings
from bot.threads import NAME_BYTES
from knowledge.embeddings import Embedder
from tests.support import FakeClock

WORKER_THREADS = {"processing-worker", "embedding-prefetch", "knowledge-indexer", "slack-outbox"}


def _names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


def _os_names() -> dict[str, str]:
    """Each running thread's name as the operating system shows it (``top -H``), by its Python name."""
    return {
        thread.name: Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()
        for thread in threading.enumerate()
        if thread.native_id is not None
    }


def test_the_worker_role_loads_runs_before_threads_then_starts_its_threads(
    knowledge_settings: Settings, shared_embedder: Embedder, clock: FakeClock
) -> None:
    settings = knowledge_settings.model_copy(update={"correlation": "learned", "classification": True})
    runtime = Runtime.build(settings, clock=clock, embedder=shared_embedder)
    seen: dict[str, object] = {}

    def before_threads() -> None:
        seen["threads"] = _names()
        seen["classifier"] = runtime.classification is not None and runtime.classification.loaded

    try:
        runtime.start(frozenset({"worker"}), before_threads=before_threads)
        started = _names()
        os_names = _os_names()
    finally:
        runtime.stop()
        runtime.database.dispose()
    expected = WORKER_THREADS | ({"wal-checkpoint"} if runtime.database.is_sqlite else set())
    assert not expected & seen["threads"]  # type: ignore[operator]
    assert started >= expected
    assert seen["classifier"] is True  # loaded first
    # top -H, ps -L and the storm benchmark tell the threads apart (Linux keeps 15 bytes: "processing-work")
    assert {name: os_names[name] for name in expected} == {name: name[:NAME_BYTES] for name in expected}
