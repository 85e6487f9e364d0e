"""The "Send test alert" menu's samples: Alertmanager webhook bodies written for this project (``samples/*.json``),
stamped with the time they are sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

NEVER = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for a firing alert


@dataclass(frozen=True)
class Sample:
    name: str
    title: str
    payload: dict[str, Any]

    def stamped(self, now: datetime) -> dict[str, Any]:
        """The body as Alertmanager would send it ``now``: every alert firing, started now."""
        alerts = [alert | {"startsAt": now.isoformat(), "endsAt": NEVER} for alert in self.payload["alerts"]]
        return self.payload | {"alerts": alerts}


def samples() -> list[Sample]:
    """The samples, by name."""
    found = []
    for entry in sorted(resources.files(__package__).joinpath("samples").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            found.append(Sample(entry.name.removesuffix(".json"), str(data["title"]), data["payload"]))
    return found
