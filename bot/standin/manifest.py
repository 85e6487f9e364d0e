"""The app manifest the stand-in installs: which bot scopes the app was granted.

The default is the HTTP manifest in ``deploy/slack-manifest.yml``, the one a user pastes into Slack. That
directory is not package data: from a source checkout (and an editable install) it is read from the repository;
where the package is installed without it, the grant is :data:`bot.slack.scopes.BOT_SCOPES`, which
``tests/test_manifests.py`` holds equal to both manifests' scopes, so both paths grant the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.slack.scopes import BOT_SCOPES

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack-manifest.yml"


class ManifestError(ValueError):
    """The manifest cannot be read or lacks ``oauth_config.scopes.bot``."""


@dataclass(frozen=True)
class AppManifest:
    """What the stand-in takes from a manifest: the bot scopes, in the manifest's order, where from, and the bot
    events the app subscribes to (what the driver delivers; none without a manifest file)."""

    bot_scopes: tuple[str, ...]
    source: str = "bot.slack.scopes.BOT_SCOPES"
    bot_events: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None) -> AppManifest:
        """The manifest at ``path``; None: the default (see the module's docstring)."""
        if path is None:
            if not DEFAULT_MANIFEST.is_file():
                return cls(tuple(BOT_SCOPES))
            path = DEFAULT_MANIFEST
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"cannot read the manifest {path}: {exc}") from None
        scopes = _at(data, "oauth_config", "scopes", "bot")
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise ManifestError(f"{path}: oauth_config.scopes.bot must be a list of scopes")
        events = _at(data, "settings", "event_subscriptions", "bot_events") or []
        return cls(tuple(dict.fromkeys(scopes)), str(path), tuple(str(event) for event in events))


def _at(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
