"""The normalised alert: one shape for every source, live or read from an evaluation file.

Each ingest adapter (Alertmanager, Grafana, PagerDuty, generic JSON) converts its payload into
:class:`NormalizedAlert`; everything downstream (grouping, classification, search) reads only this type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from knowledge.fingerprint import labels_fingerprint

# Severity names in increasing order of urgency. Unknown names rank with "warning".
SEVERITY_ORDER: tuple[str, ...] = ("info", "warning", "error", "critical")
DEFAULT_SEVERITY = "warning"

_SEVERITY_ALIASES: dict[str, str] = {
    "information": "info",
    "informational": "info",
    "none": "info",
    "low": "info",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
    "high": "error",
    "major": "error",
    "page": "critical",
    "crit": "critical",
    "fatal": "critical",
    "disaster": "critical",
}


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def normalize_severity(raw: str | None) -> str | None:
    """Map a source's severity word onto :data:`SEVERITY_ORDER`; ``None`` when absent or blank."""
    if raw is None:
        return None
    word = raw.strip().lower()
    if not word:
        return None
    word = _SEVERITY_ALIASES.get(word, word)
    return word if word in SEVERITY_ORDER else DEFAULT_SEVERITY


def severity_rank(severity: str) -> int:
    """Position of a severity in :data:`SEVERITY_ORDER` (higher is more urgent)."""
    try:
        return SEVERITY_ORDER.index(severity)
    except ValueError:
        return SEVERITY_ORDER.index(DEFAULT_SEVERITY)


@dataclass(frozen=True, slots=True)
class NormalizedAlert:
    """One alert as incibot understands it, whatever sent it.

    ``fingerprint`` identifies the alert's label set (Alertmanager's algorithm unless the source has its
    own identity, like a PagerDuty dedup key). ``starts_at`` distinguishes occurrences of one fingerprint;
    it is ``None`` when the source does not say when the alert started.
    """

    source: str
    status: AlertStatus
    fingerprint: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None
    severity_hint: str | None = None  # a source-level severity (PagerDuty) used when no label says

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        """The ``severity`` label, else the source's own severity, else ``warning``."""
        return (
            normalize_severity(self.labels.get("severity"))
            or normalize_severity(self.severity_hint)
            or DEFAULT_SEVERITY
        )

    @property
    def service(self) -> str | None:
        """The ``service`` label, else ``job``, else ``namespace``."""
        for key in ("service", "job", "namespace"):
            value = self.labels.get(key)
            if value:
                return value
        return None

    @property
    def title(self) -> str:
        """The summary annotation, else the alert name, else the fingerprint."""
        summary = self.annotations.get("summary", "").strip()
        return summary or self.alertname or f"alert {self.fingerprint}"


def alertmanager_alert(
    *,
    source: str,
    status: AlertStatus,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    starts_at: datetime | None,
    ends_at: datetime | None,
    generator_url: str | None,
    fingerprint: str | None,
) -> NormalizedAlert:
    """An Alertmanager-shaped alert (a live webhook's, or an evaluation file's) as a :class:`NormalizedAlert`;
    the fingerprint is Alertmanager's label-set hash when the sender gave none."""
    return NormalizedAlert(
        source=source,
        status=status,
        fingerprint=fingerprint or labels_fingerprint(labels),
        labels=dict(labels),
        annotations=dict(annotations),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=generator_url or None,
    )
