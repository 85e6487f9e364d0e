"""The registry's rows: register a trained version, promote it, roll it back, and find each kind's champion.

A version's artefact lives in ``<state dir>/models/<kind>/<version>/`` beside its registry card
(:data:`CARD_FILE`: kind, version, training data by source, label set, held-out metrics, library versions, the
command that reproduces it). The champion of a kind is its most recently promoted version not rolled back; with
none, the packaged default (version ``0``) serves. Loading a version checks its card first (:func:`check_card`).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.registry.models import ModelVersion

KINDS = ("correlate", "classify")
DEFAULT_VERSION = "0"  # the packaged default of each kind
CARD_FILE = "registry.json"  # the registry's card, beside the artefact's own files
LIBRARIES = ("numpy", "scikit-learn")  # the libraries whose versions an artefact must be loaded with


class RegistryError(ValueError):
    """A registry action that cannot be done (unknown version, a card that does not match); one clear line."""


def library_versions() -> dict[str, str]:
    """The versions a model trained now depends on: Python's (major.minor) and :data:`LIBRARIES`'."""
    return {"python": ".".join(platform.python_version_tuple()[:2])} | {
        name: metadata.version(name) for name in LIBRARIES
    }


def feature_version(kind: str) -> str:
    """What a model of ``kind`` reads, as a short digest: the pair features the correlator computes, the
    category list a classifier chooses from. A model made for other ones is refused."""
    if kind == "correlate":
        from knowledge.correlation.features import FEATURES as names
    else:
        from knowledge.classify.categories import CATEGORY_KEYS as names
    return f"{kind}:" + hashlib.sha256(",".join(names).encode()).hexdigest()[:12]


def check_card(card: Mapping[str, Any], kind: str) -> None:
    """Refuse (:class:`RegistryError`) a card of another kind, feature version or library versions."""
    version = card.get("version", "?")
    features = feature_version(kind)
    if card.get("kind") != kind:
        raise RegistryError(f"model {version} is a {card.get('kind')!r} model, not {kind!r}")
    if card.get("features") != features:
        raise RegistryError(f"model {version} was trained on features {card.get('features')!r}, this is {features!r}")
    libraries = card.get("libraries") or {}
    for name, here in library_versions().items():
        if libraries.get(name) != here:
            raise RegistryError(f"model {version} was trained with {name} {libraries.get(name)}, this is {here}")


def read_card(directory: Path) -> dict[str, Any]:
    path = directory / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the registry card: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise RegistryError(f"{path}: not a registry card: {exc}") from exc
    if not isinstance(card, dict):
        raise RegistryError(f"{path}: not a registry card")
    return card


def write_card(directory: Path, card: Mapping[str, Any]) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def register(
    session: Session,
    kind: str,
    directory: Path,
    card: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    now: datetime,
    note: str | None = None,
) -> ModelVersion:
    """Add a trained version (not promoted); its card is written beside the artefact and kept in the row."""
    if kind not in KINDS:
        raise RegistryError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    version = str(card["version"])
    if _row(session, kind, version) is not None:
        raise RegistryError(f"{kind} version {version} is already registered")
    write_card(directory, card)
    row = ModelVersion(
        kind=kind,
        version=version,
        path=str(directory),
        created_at=now,
        card=dict(card),
        metrics=dict(metrics),
        note=note,
    )
    session.add(row)
    session.flush()
    return row


def promote(
    session: Session, kind: str, version: str, *, actor: str, now: datetime, note: str | None = None
) -> ModelVersion:
    """Make ``version`` the champion of ``kind`` (again, if it had been rolled back); its card must match this
    code (:func:`check_card`) and its artefact folder must still be there."""
    row = _row(session, kind, version)
    if row is None:
        raise RegistryError(f"no {kind} version {version} in the registry (see `incibot models list`)")
    if not Path(row.path).is_dir():
        raise RegistryError(f"{kind} version {version}: its artefact folder {row.path} is gone")
    check_card(read_card(Path(row.path)), kind)
    row.promoted_at, row.promoted_by, row.rolled_back_at = now, actor, None
    row.note = note or row.note
    session.flush()
    return row


def rollback(session: Session, kind: str, *, now: datetime) -> tuple[ModelVersion, ModelVersion | None]:
    """Retire the champion of ``kind``; returns it and the new champion (``None``: the packaged default)."""
    current = champion(session, kind)
    if current is None:
        raise RegistryError(f"the {kind} champion is the packaged default (version 0): nothing to roll back")
    current.rolled_back_at = now
    session.flush()
    return current, champion(session, kind)


def champion(session: Session, kind: str) -> ModelVersion | None:
    """The most recently promoted version of ``kind`` not rolled back (``None``: the packaged default)."""
    return session.scalars(
        select(ModelVersion)
        .where(ModelVersion.kind == kind, ModelVersion.promoted_at.is_not(None), ModelVersion.rolled_back_at.is_(None))
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
        .limit(1)
    ).first()


def champion_dir(session: Session, kind: str) -> Path | None:
    """The champion's artefact folder (``None``: the packaged default serves)."""
    row = champion(session, kind)
    return Path(row.path) if row is not None else None


def versions(session: Session, kind: str | None = None) -> list[ModelVersion]:
    """Registered versions (of ``kind``, or all), oldest first."""
    query = select(ModelVersion).order_by(ModelVersion.kind, ModelVersion.created_at, ModelVersion.id)
    if kind is not None:
        query = query.where(ModelVersion.kind == kind)
    return list(session.scalars(query))


def _row(session: Session, kind: str, version: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.version == version)
    ).first()
