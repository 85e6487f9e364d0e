"""Champion and challenger: a freshly trained version is scored beside the champion on the same held-out data and
promoted only when it is not worse on its kind's primary metric; otherwise the champion stays and the registry
says why. Either way the challenger is registered, with its card and scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.db.database import Database
from bot.registry.data import Provenance
from bot.registry.store import (
    DEFAULT_VERSION,
    champion,
    feature_version,
    library_versions,
    promote,
    register,
)

Model = TypeVar("Model")


@dataclass(frozen=True, slots=True)
class Score:
    """A model's scores on the held-out data: the primary metric first, then the rest (for people and drift)."""

    metric: str
    value: float
    higher_is_better: bool
    details: dict[str, float] = field(default_factory=dict)

    def not_worse_than(self, other: Score) -> bool:
        return self.value >= other.value if self.higher_is_better else self.value <= other.value

    def to_json(self) -> dict[str, Any]:
        return {self.metric: self.value, **self.details}


@dataclass(frozen=True, slots=True)
class Challenger:
    """A trained, saved version that is not registered yet."""

    kind: str
    version: str
    directory: Path
    created_at: str
    command: str
    data: Sequence[Provenance]
    labels: Sequence[str]
    extra: Mapping[str, Any] = field(default_factory=dict)  # the kind's own card fields worth keeping

    def card(self, held_out: str, score: Score) -> dict[str, Any]:
        """The registry card (written beside the artefact and kept in its row)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "created_at": self.created_at,
            "command": self.command,
            "features": feature_version(self.kind),
            "libraries": library_versions(),
            "data": [source.to_json() for source in self.data],
            "labels": list(self.labels),
            "held_out": held_out,
            "metrics": score.to_json(),
            "primary_metric": score.metric,
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str
    challenger: str
    champion: str  # its version, DEFAULT_VERSION for the packaged default
    challenger_score: Score
    champion_score: Score | None  # None: the champion could not be loaded here
    promoted: bool
    reason: str

    def summary(self) -> str:
        return f"{self.kind}: {'promoted' if self.promoted else 'kept the champion'}: {self.reason}"


def challenge(
    database: Database,
    challenger: Challenger,
    model: Model,
    load: Callable[[Path | None], Model],
    score: Callable[[Model], Score],
    held_out: str,
    *,
    actor: str,
    now: datetime,
) -> Verdict:
    """Score ``model`` (the challenger's) and the champion (``load(None)``: the packaged default) on the same
    ``held_out`` data, register the challenger, and promote it when it is not worse on the primary metric."""
    with database.read() as session:
        current = champion(session, challenger.kind)
        champion_version = current.version if current is not None else DEFAULT_VERSION
        champion_path = Path(current.path) if current is not None else None
    mine = score(model)
    try:
        theirs: Score | None = score(load(champion_path))
    except (
        ValueError
    ) as exc:  # RegistryError or the kind's own ModelError  # a champion that does not load here cannot be compared
        theirs, why = None, f"the champion {champion_version} cannot be scored here ({exc})"
    verdict = _verdict(challenger, champion_version, mine, theirs, why if theirs is None else "")
    with database.write() as session:
        register(
            session,
            challenger.kind,
            challenger.directory,
            challenger.card(held_out, mine),
            {
                "held_out": held_out,
                "challenger": mine.to_json(),
                "champion": {"version": champion_version, **(theirs.to_json() if theirs else {})},
            },
            now=now,
            note=verdict.reason,
        )
        if verdict.promoted:
            promote(session, challenger.kind, challenger.version, actor=actor, now=now, note=verdict.reason)
    return verdict


def _verdict(challenger: Challenger, champion_version: str, mine: Score, theirs: Score | None, why: str) -> Verdict:
    name = mine.metric.replace("_", " ")
    if theirs is None:
        reason = f"{why}; the challenger {challenger.version} has {name} {mine.value:.4f}"
        return Verdict(challenger.kind, challenger.version, champion_version, mine, None, True, reason)
    better = "higher" if mine.higher_is_better else "lower"
    compared = (
        f"{name} {mine.value:.4f} for the challenger {challenger.version}, {theirs.value:.4f} for the champion "
        f"{champion_version} ({better} is better)"
    )
    if mine.not_worse_than(theirs):
        return Verdict(challenger.kind, challenger.version, champion_version, mine, theirs, True, f"{compared}")
    reason = f"the challenger is worse: {compared}"
    return Verdict(challenger.kind, challenger.version, champion_version, mine, theirs, False, reason)
