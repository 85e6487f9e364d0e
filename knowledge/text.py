"""The canonical text of an alert: the one string search, embeddings and classification read.

:func:`alert_text` is the only place that turns a :class:`~knowledge.alerts.NormalizedAlert` into text, for
live alerts and for evaluation files alike (:func:`alert_from_mapping` reads the latter). Volatile values
(numbers, IP addresses and ports, pod and ReplicaSet hash suffixes, UUIDs, timestamps, long hex ids) are
normalised away, so two occurrences of one problem on different pods or at different times read the same and
share a cache entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from knowledge.alerts import AlertStatus, NormalizedAlert, alertmanager_alert

# Labels that say what is affected and how badly; identities of single replicas (pod, instance, uid) are not.
INFORMATIVE_LABELS: tuple[str, ...] = (
    "service",
    "job",
    "namespace",
    "component",
    "app",
    "container",
    "deployment",
    "statefulset",
    "daemonset",
    "cronjob",
    "persistentvolumeclaim",
    "mountpoint",
    "fstype",
    "device",
    "integration",
    "reason",
    "severity",
)
# Annotations with prose about the alert (``message`` is the older kube-prometheus name for ``description``).
TEXT_ANNOTATIONS: tuple[str, ...] = ("summary", "description", "message")

# Kubernetes writes random suffixes with "bcdfghjklmnpqrstvwxz2456789": no vowels, which keeps real words
# intact. All digits are accepted too, for hand-written and other generators' names.
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz0-9"
_POD_SUFFIX = re.compile(rf"(?<=[a-z0-9])(?:-[{_K8S_ALPHABET}]{{6,10}})?-[{_K8S_ALPHABET}]{{5}}(?![\w-])")
_STATEFUL_ORDINAL = re.compile(r"(?<=[a-z])-\d{1,3}(?![\w.-])")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{2}:\d{2}:\d{2}\b"
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?::\d{1,5})?\b")
_IPV6 = re.compile(
    r"\[?(?<![\w:])(?=[0-9a-fA-F:]*::|(?:[0-9a-fA-F]{1,4}:){5})[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])\]?"
    r"(?::\d{1,5})?"
)
_HOST_PORT = re.compile(r"(?<=[a-zA-Z])(:\d{2,5})\b")
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b")
# A number alone or with a unit (``5``, ``87.5%``, ``10m``, ``3GiB``); ``5xx`` or ``http2`` are words.
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?=(?:ns|us|ms|s|m|h|d|w|[kKMGTP]i?B|B|%)?(?!\w))")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+[a-z]*")
_SPACES = re.compile(r"[ \t]+")

IP_MARK = "<ip>"
UUID_MARK = "<uuid>"
TIME_MARK = "<time>"
ID_MARK = "<id>"
NUMBER_MARK = "N"


def split_identifier(name: str) -> str:
    """``KubePodCrashLooping`` → ``Kube Pod Crash Looping``; ``etcdHTTP5xxErrors`` → ``etcd HTTP 5xx Errors``.

    Also splits on ``_``, ``-``, ``.`` and ``:`` (``node_disk_full`` → ``node disk full``).
    """
    words: list[str] = []
    for part in re.split(r"[_\-.:/\s]+", name):
        words.extend(_CAMEL.findall(part))
    return " ".join(words)


def workload_name(pod: str) -> str:
    """The workload a pod belongs to: ``checkout-api-7d9f8c6b5-x2x4k`` → ``checkout-api``, ``payments-db-0`` →
    ``payments-db`` (ReplicaSet/pod hash suffixes and StatefulSet ordinals dropped)."""
    return _STATEFUL_ORDINAL.sub("", _POD_SUFFIX.sub("", pod.strip()))


@lru_cache(maxsize=1 << 16)  # a storm repeats the same label values and annotations thousands of times
def normalize_volatile(text: str) -> str:
    """Replace values that change between occurrences of one problem with fixed tokens (or drop them)."""
    text = _UUID.sub(UUID_MARK, text)
    text = _TIMESTAMP.sub(TIME_MARK, text)
    text = _IPV4.sub(IP_MARK, text)
    text = _IPV6.sub(IP_MARK, text)
    text = _POD_SUFFIX.sub("", text)
    text = _STATEFUL_ORDINAL.sub("", text)
    text = _HOST_PORT.sub("", text)
    text = _HEX_ID.sub(ID_MARK, text)
    text = _NUMBER.sub(NUMBER_MARK, text)
    return _SPACES.sub(" ", text).strip()


def alert_text(alert: NormalizedAlert) -> str:
    """The canonical text of ``alert``: name in words, summary, description, informative labels.

    One line each, empty parts left out, e.g.::

        Kube Pod Crash Looping
        Pod is crash looping.
        Pod payments/payments-api (server) is in waiting state (reason: "CrashLoopBackOff").
        namespace: payments; container: server; severity: critical
    """
    lines: list[str] = []
    if alert.alertname:
        lines.append(split_identifier(alert.alertname))
    seen: set[str] = set()
    for key in TEXT_ANNOTATIONS:
        value = normalize_volatile(" ".join(alert.annotations.get(key, "").split()))
        if value and value not in seen:
            seen.add(value)
            lines.append(value)
    labels = []
    for key in INFORMATIVE_LABELS:
        raw = alert.labels.get(key, "").strip()
        if not raw:
            continue
        value = alert.severity if key == "severity" else normalize_volatile(raw)
        if value:
            labels.append(f"{key}: {value}")
    if labels:
        lines.append("; ".join(labels))
    return "\n".join(lines)


def alert_from_mapping(data: Mapping[str, Any], *, source: str = "alertmanager") -> NormalizedAlert:
    """An Alertmanager v4 alert object (``labels``, ``annotations``, optional ``status``, ``startsAt``,
    ``endsAt``, ``fingerprint``, ``generatorURL``) as a :class:`NormalizedAlert`, as the live webhook makes it.
    """
    labels = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (data.get("annotations") or {}).items()}
    status = AlertStatus(data.get("status") or AlertStatus.FIRING.value)
    return alertmanager_alert(
        source=source,
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=_time(data.get("startsAt")),
        ends_at=_time(data.get("endsAt")),
        generator_url=data.get("generatorURL"),
        fingerprint=str(data.get("fingerprint") or "") or None,
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
