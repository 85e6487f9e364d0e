"""All of incibot's configuration: one pydantic-settings class, read from the environment once.

Every field here appears once in the README's configuration table.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SOURCES: tuple[str, ...] = ("alertmanager", "grafana", "pagerduty", "generic")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(raw: object) -> object:
    """Accept ``90s``, ``30m``, ``2h``, ``1d`` or plain seconds; anything else goes to pydantic."""
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text))
        if text[-1:] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text[:-1]) * _UNITS[text[-1]])
    return raw


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class Settings(BaseSettings):
    """incibot settings; each field is read from ``INCIBOT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="INCIBOT_", extra="ignore", frozen=True)

    state_dir: Path = Path("./var")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to a SQLite file in the state dir."
    )
    ingest_tokens: Annotated[tuple[tuple[str | None, SecretStr], ...], NoDecode] = ()
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    reopen_window: Duration = timedelta(minutes=30)
    ignore_alertnames: Annotated[frozenset[str], NoDecode] = frozenset({"Watchdog", "InfoInhibitor"})
    retention_days: int = Field(default=30, gt=0)
    quiet_after: Duration = timedelta(hours=24)
    db_lock_timeout: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, gt=0)
    process_deliveries: bool = True
    log_level: str = "INFO"

    @field_validator("ingest_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        entries: list[tuple[str | None, SecretStr]] = []
        for entry in (part.strip() for part in raw.split(",")):
            if not entry:
                continue
            source, sep, token = entry.partition("=")
            if not sep:
                source, token = "", entry
            source = source.strip().lower()
            if source and source not in SOURCES:
                raise ValueError(f"unknown source {source!r} (expected one of {', '.join(SOURCES)})")
            if not token.strip():
                raise ValueError("empty token")
            entries.append((source or None, SecretStr(token.strip())))
        return tuple(entries)

    @field_validator("ignore_alertnames", mode="before")
    @classmethod
    def _parse_names(cls, raw: object) -> object:
        if isinstance(raw, str):
            return frozenset(name.strip() for name in raw.split(",") if name.strip())
        return raw

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'incibot.db'}"

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def token_file(self) -> Path:
        return self.state_dir / "ingest-token"
