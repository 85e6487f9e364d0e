"""A registered model version (its artefact lives in ``<state dir>/models/<kind>/<version>/``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONDocument


class ModelVersion(Base):
    """One trained version of a model kind (``correlate``, ``classify``). The champion of a kind is its most
    recently promoted version not rolled back; with none, the packaged default (version 0) serves."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("kind", "version", name="uq_model_versions_kind_version"),
        Index("ix_model_versions_kind_promoted", "kind", "promoted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(80))
    path: Mapped[str] = mapped_column(Text)  # the artefact folder
    created_at: Mapped[datetime]
    card: Mapped[dict[str, Any]] = mapped_column(JSONDocument)  # the model card as saved with the artefact
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONDocument)  # its scores on the held-out split
    promoted_at: Mapped[datetime | None]
    promoted_by: Mapped[str | None] = mapped_column(String(200))
    rolled_back_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)  # why it was promoted or kept out
