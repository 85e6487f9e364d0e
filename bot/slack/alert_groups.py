"""Groups an incident's alerts for its post: one line per alert name and status, with what tells them apart.

``3 x KubePodCrashLooping — shop/cart-…-0, -1, -2`` (a multiplication sign for the x) instead of three
near-identical lines. What tells the alerts of a group apart is the label (or two) with the most distinct
values, or, when no label differs, their summaries; a prefix the values share is shown once. Pure functions,
no Slack escaping (the builders in :mod:`bot.slack.blocks` escape what these return).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.slack.mrkdwn import ELLIPSIS, clip

NAME_LABEL = "alertname"
_SEPARATORS = frozenset("-_./:@ ,=")
_MIN_SHARED_PREFIX = 4  # shorter shared prefixes are not worth collapsing
_PREFIX_HEAD = 8  # a collapsed prefix keeps its first words up to about this many characters


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert as the post lists it."""

    name: str
    status: str
    summary: str
    url: str | None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """The alerts of one name and status: ``summary`` when they all share it, ``differences`` the distinct values
    that tell them apart (in arrival order; empty when nothing does)."""

    name: str
    status: str
    count: int
    summary: str | None
    differences: tuple[str, ...]


def group_alerts(alerts: Sequence[AlertLine]) -> list[AlertGroup]:
    """The alerts grouped by (name, status), groups in order of their first alert."""
    members: dict[tuple[str, str], list[AlertLine]] = {}
    for alert in alerts:
        members.setdefault((alert.name, alert.status), []).append(alert)
    return [_group(name, status, group) for (name, status), group in members.items()]


def _group(name: str, status: str, alerts: list[AlertLine]) -> AlertGroup:
    summaries = list(dict.fromkeys(alert.summary for alert in alerts))
    summary = summaries[0] if len(summaries) == 1 else None
    differences = _label_differences(alerts) or (tuple(summaries) if summary is None else ())
    return AlertGroup(name, status, len(alerts), summary, differences)


def _label_differences(alerts: list[AlertLine]) -> tuple[str, ...]:
    """Per alert, the values of the one or two labels that best tell the alerts apart, joined by "/"."""
    keys = sorted({key for alert in alerts for key in alert.labels} - {NAME_LABEL})
    columns = {key: [alert.labels.get(key, "") for alert in alerts] for key in keys}
    differing = [key for key in keys if len(set(columns[key])) > 1]
    if not differing:
        return ()
    # Most distinct values first; then the shorter values (more compact), then the name (stable).
    ranked = sorted(differing, key=lambda key: (-len(set(columns[key])), sum(map(len, columns[key])), key))
    chosen = [ranked[0]]
    identities = len({tuple(sorted(alert.labels.items())) for alert in alerts})
    if len(set(columns[ranked[0]])) < identities:
        best = ranked[0]
        for key in ranked[1:]:
            if len(set(zip(columns[best], columns[key], strict=True))) > len(set(columns[best])):
                chosen.append(key)
                break
    chosen.sort(key=lambda key: (len(set(columns[key])), key))  # the broader label first: "namespace/pod"
    values = ("/".join(part for part in parts if part) for parts in zip(*(columns[k] for k in chosen), strict=True))
    return tuple(dict.fromkeys(values))


def compact_list(values: Sequence[str], *, shown: int = 5, value_chars: int = 60, partial: bool = False) -> str:
    """``shop/cart-…-0, -1, -2``: up to ``shown`` values, a prefix they share written once (so what differs stays
    visible however long the prefix), each clipped to ``value_chars``, then "and N more" (``partial``: the values
    come from a sample of the alerts, so "and more")."""
    items = list(values[:shown])
    prefix = _shared_prefix(items) if len(items) > 1 else ""
    if len(prefix) >= _MIN_SHARED_PREFIX:
        rests = [item[len(prefix) :] for item in items]
        items = [_abbreviated(prefix) + rests[0]] + [prefix[-1] + rest for rest in rests[1:]]
    listed = ", ".join(clip(item, value_chars) for item in items)
    more = len(values) - len(items)
    if partial:
        return f"{listed} and more"
    return listed + (f" and {more} more" if more > 0 else "")


def _shared_prefix(values: list[str]) -> str:
    """The longest prefix all ``values`` share, cut back to end at a separator (so no word is split)."""
    first, last = min(values), max(values)  # the prefix all share is the one these two share
    length = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    prefix = first[:length]
    cut = max((index for index, char in enumerate(prefix) if char in _SEPARATORS), default=-1)
    return prefix[: cut + 1]


def _abbreviated(prefix: str) -> str:
    """``shop/cart-5d8c7b9f4-`` → ``shop/cart-…-``: the first words (a few characters), "…", the last separator."""
    head_end = next(
        (i for i, char in enumerate(prefix[:-1]) if char in _SEPARATORS and i + 1 >= _PREFIX_HEAD), len(prefix) - 1
    )
    head = prefix[: min(head_end + 1, 2 * _PREFIX_HEAD)]
    return head + ELLIPSIS + prefix[-1] if len(head) + 2 < len(prefix) else prefix
