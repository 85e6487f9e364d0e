"""All of incibot's configuration: one pydantic-settings class, read from the environment once.

Every field here appears once in the README's configuration table.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from knowledge.classify.categories import CATEGORY_KEYS
from knowledge.embeddings import Precision
from knowledge.runbooks import SAMPLE_RUNBOOKS

SOURCES: tuple[str, ...] = ("alertmanager", "grafana", "pagerduty", "generic", "changes")  # token scopes

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


def secret_value(value: SecretStr | None) -> str | None:
    """A credential's value; None when it is unset or blank (``SLACK_SIGNING_SECRET=`` configures nothing)."""
    return value.get_secret_value() if value is not None and value.get_secret_value().strip() else None


class Rate(NamedTuple):
    """``limit`` per ``per`` (``INCIBOT_AGENT_RATE=5/min``)."""

    limit: int
    per: timedelta


_RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")


def _parse_rate(raw: object) -> object:
    """``5/min``, ``20/hour``, ``3/30s``; anything else goes to pydantic."""
    if not isinstance(raw, str):
        return raw
    match = _RATE.fullmatch(raw.lower())
    if match is None or int(match[1]) < 1 or match[3] not in _RATE_UNITS or match[2] == "0":
        raise ValueError(f"rate {raw!r} is not COUNT/PERIOD (e.g. 5/min, 20/hour, 3/30s)")
    return Rate(int(match[1]), timedelta(seconds=int(match[2] or 1) * _RATE_UNITS[match[3]]))


CATEGORY_ROUTE = "category"  # a route on ``category=KEY`` matches the incident's category, not an alert label


class Route(NamedTuple):
    """Incidents whose alerts carry ``label=value`` (or, for ``category=KEY``, whose category is KEY) are posted
    to ``channel``."""

    label: str
    value: str
    channel: str

    @property
    def on_category(self) -> bool:
        return self.label == CATEGORY_ROUTE


class Settings(BaseSettings):
    """incibot settings; each field is read from ``INCIBOT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="INCIBOT_", extra="ignore", frozen=True, populate_by_name=True)

    state_dir: Path = Path("./var")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to a SQLite file in the state dir."
    )
    ingest_tokens: Annotated[tuple[tuple[str | None, SecretStr], ...], NoDecode] = ()
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    reopen_window: Duration = timedelta(minutes=60)
    # learned: one incident per fault (the pair model decides); shadow: incidents follow source groups while the
    # learned correlator records what it would have done; source: as the source grouped the alerts.
    correlation: Literal["learned", "shadow", "source"] = "learned"
    correlation_max_services: int = Field(default=25, gt=0)
    correlation_max_age: Duration = timedelta(hours=12)
    topology_file: Path | None = None
    ignore_alertnames: Annotated[frozenset[str], NoDecode] = frozenset({"Watchdog", "InfoInhibitor"})
    retention_days: int = Field(default=30, gt=0)
    quiet_after: Duration = timedelta(hours=24)
    db_lock_timeout: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, gt=0)
    process_deliveries: bool = True
    log_level: str = "INFO"
    knowledge: bool = True  # load the embedding model at start-up: runbooks and similar incidents in posts
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_precision: Precision = "auto"  # auto: bfloat16 where the CPU has native bfloat16 instructions
    worker_nice: int = Field(default=10, ge=0, le=19)  # the worker process's CPU niceness: ingestion comes first
    model_threads: int = Field(default=1, gt=0)  # torch's CPU threads per service process (it shares its cores)
    classification: bool = True  # the worker classifies incidents (off: they stay unclassified until people pick)
    # When (UTC) one process a day trains a challenger of each model and promotes it if it is not worse; "off": never.
    nightly_training: Annotated[time | None, BeforeValidator(lambda v: None if v in ("off", "", None) else v)] = time(3)
    runbooks_dir: Path | None = None  # None: the sample runbooks shipped in knowledge/samples/runbooks
    index_dir: Path | None = None  # None: <state dir>/index
    index_save_interval: Duration = timedelta(seconds=60)
    # Remediation: off hides it; dry-run (the default, even with an actions file) records requests and approvals and
    # shows what would be done without ever calling an executor; on runs approved actions (only when set so).
    remediation: Literal["off", "dry-run", "on"] = "dry-run"
    actions_file: Path | None = None  # the action catalogue (YAML); None: no actions

    # Slack. The three credentials keep Slack's own variable names.
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = "https://slack.com/api/"
    slack_mode: Literal["auto", "real", "standin"] = "auto"
    standin_port: int = Field(default=0, ge=0, le=65535)
    alerts_channel: str = "incidents"
    routes: Annotated[tuple[Route, ...], NoDecode] = ()
    min_severity: Literal["info", "warning", "error", "critical"] = "info"
    responders: Annotated[frozenset[str], NoDecode] = frozenset()
    unacked_reminder: Duration = timedelta(minutes=15)
    incident_channels: bool = False
    # The virtual agent (DMs, @-mentions, /ask): answers from open incidents and the knowledge base.
    agent: bool = True
    agent_rate: Annotated[Rate, NoDecode, BeforeValidator(_parse_rate)] = Rate(5, timedelta(minutes=1))  # per user
    agent_threshold: float | None = Field(default=None, ge=0, le=1)  # None: knowledge.qa's DEFAULT_QA_THRESHOLD
    faq_dir: Path | None = None  # None: the sample FAQ articles shipped in knowledge/samples/faq
    help_channel: str | None = None  # where "Ask a human" posts questions (a channel the bot is in); None: off
    # Optional generated answers (the extractive answer whenever the model is late, fails or strays).
    llm_url: str | None = None  # an OpenAI-compatible server ({url}/v1/chat/completions); None: extractive answers only
    llm_timeout: float = Field(default=5.0, gt=0)  # seconds for the whole exchange; later: the extractive answer
    llm_api_key: SecretStr | None = None
    llm_model: str = "default"

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

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        routes = []
        for rule in (part.strip() for part in raw.split(",")):
            if not rule:
                continue
            matcher, sep, channel = rule.rpartition(":")
            label, eq, value = matcher.partition("=")
            if not sep or not eq or not label.strip() or not value.strip() or not channel.strip(" #"):
                raise ValueError(f"route {rule!r} is not LABEL=VALUE:#channel")
            route = Route(label.strip(), value.strip(), channel.strip().lstrip("#"))
            if route.on_category and route.value not in CATEGORY_KEYS:
                raise ValueError(
                    f"route {rule!r}: unknown category {route.value!r} (one of {', '.join(CATEGORY_KEYS)})"
                )
            routes.append(route)
        return tuple(routes)

    @field_validator("ignore_alertnames", "responders", mode="before")
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
    def effective_index_dir(self) -> Path:
        return self.index_dir or self.state_dir / "index"

    @property
    def effective_runbooks_dir(self) -> Path:
        return self.runbooks_dir or SAMPLE_RUNBOOKS

    @property
    def effective_faq_dir(self) -> Path:
        return self.faq_dir or SAMPLE_RUNBOOKS.parent / "faq"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "ingest-token"
