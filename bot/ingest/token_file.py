"""The ingest token that ``make run`` creates when none is configured, kept in the state dir (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot.settings import Settings


def load_or_create(path: Path) -> tuple[str, bool]:
    """Return the token in ``path``, creating it (mode 0600) if missing or empty; the flag says it was created."""
    existing = read(path)
    if existing is not None:
        return existing, False
    path.unlink(missing_ok=True)  # an empty file (a crash between create and write) is replaced
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token, True


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def alertmanager_token(settings: Settings) -> str | None:
    """The token a sender of Alertmanager webhooks uses: the configured one for ``alertmanager`` (or for every
    source), else the one in the token file."""
    for source, secret in settings.ingest_tokens:
        if source in (None, "alertmanager"):
            return secret.get_secret_value()
    return read(settings.token_file)
