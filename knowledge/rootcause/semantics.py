"""What an alert's rule says about its component: a failure of the component itself, or a symptom of another's.

Read from the words of the alert's name and summary, never from a list of rule names: ``down``, ``no leader``,
``out of memory``, ``crash``, ``NotReady`` describe a component that failed; ``5xx``, ``latency``, ``unhealthy``,
``replicas mismatch``, ``probe failed`` describe what callers and controllers see; a queue's backlog or missing
consumer is the symptom of its consumers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from knowledge.text import split_identifier

FAILURE = 1.0  # the component itself failed
NEUTRAL = 0.5  # saturation, resource use: could be either
SYMPTOM = 0.15  # what others see of a failure elsewhere

_FAILURE = re.compile(
    r"\b(down|unavailable|no (leader|primary)|not ready|out of (memory|disk|space|inodes)|disk (full|space)|"
    r"crash\w*|oom\w*|killed|leak|servfail|unreachable|expired|revoked|deadlock\w*|pressure|no space|"
    r"network unavailable|has no)\b"
)
_SYMPTOM = re.compile(
    r"\b(5xx|4xx|errors?|latency|slow\w*|probe|unhealthy|not healthy|ready|unready|mismatch|replicas|rollout|"
    r"generation|hpa|scale|throttl\w*|missing|timeouts?|terminating|list|watch|too long|pending|waiting|"
    r"failing|failure)\b"
)
_BACKLOG = re.compile(
    r"\b(consumers?|consuming|lag|backlog|ready messages|unack\w*|pending (bytes|messages)|queue nearly full)\b"
)


@dataclass(frozen=True, slots=True)
class RuleMeaning:
    """How much an alert looks like its component's own failure (0..1), and whether it is a queue's backlog."""

    failure: float
    backlog: bool


def rule_meaning(labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> RuleMeaning:
    """The meaning of an alert's rule, from its name and summary."""
    words = " ".join(
        [split_identifier(labels.get("alertname", "")), (annotations or {}).get("summary", "").split("(")[0]]
    ).lower()
    words = words.replace("slowing down", "slowing")
    backlog = bool(_BACKLOG.search(words))
    if backlog:
        return RuleMeaning(SYMPTOM, True)
    if _FAILURE.search(words):
        return RuleMeaning(FAILURE, False)
    if _SYMPTOM.search(words):
        return RuleMeaning(SYMPTOM, False)
    return RuleMeaning(NEUTRAL, False)
