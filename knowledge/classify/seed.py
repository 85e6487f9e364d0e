"""The labelled seed set: several hundred alerts written for incibot, one category each.

``seed/catalogue.yaml`` holds families of technologies and the alert rules written for them; every technology of a
family gets every rule, rendered as an Alertmanager alert (labels and annotations). The seed set trains the shipped
classifier and gives every classifier its prior knowledge of the categories.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from knowledge.classify.categories import CATEGORY_KEYS
from knowledge.text import alert_from_mapping, alert_text

CATALOGUE = Path(__file__).with_name("seed") / "catalogue.yaml"


def seed_alerts(path: Path = CATALOGUE) -> list[tuple[dict[str, Any], str, str]]:
    """``(alert, category, rule)`` for every rendered seed alert, in catalogue order; the rule names the family and
    the rule of it (``database/2/0``: the first rule of the third database family), whatever the technology."""
    catalogue = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = sorted(set(catalogue) - set(CATEGORY_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown categories {unknown}")
    out: list[tuple[dict[str, Any], str, str]] = []
    for key, families in catalogue.items():
        for index, family in enumerate(families):
            extra = {str(k): str(v) for k, v in (family.get("labels") or {}).items()}
            for n, (name, job) in enumerate(family["techs"]):
                prefix = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", name))
                for rule, (alertname, summary, description, severity) in enumerate(family["alerts"]):
                    labels = {
                        "alertname": alertname.format(T=prefix),
                        "severity": severity,
                        "job": job,
                        "instance": f"{job}-{n}.prod.internal:9100",
                        **extra,
                    }
                    annotations = {"summary": f"{name}: {summary}", "description": description}
                    out.append(({"labels": labels, "annotations": annotations}, key, f"{key}/{index}/{rule}"))
    return out


@cache
def seed_examples() -> list[tuple[str, str]]:
    """``(canonical text, category)`` of every seed alert."""
    return [(alert_text(alert_from_mapping(alert)), key) for alert, key, _ in seed_alerts()]


@cache
def seed_groups() -> list[str]:
    """The rule of each of :func:`seed_examples`: held-out folds hold a rule out for all its technologies, so that
    scores on the seed say how it does on a rule it has not seen, not on one more technology of a rule it has."""
    return [rule for _, _, rule in seed_alerts()]
