"""Where retrained model artefacts live: one folder per version under ``<models dir>/<kind>/``."""

from __future__ import annotations

from pathlib import Path


def artefact_dirs(models_dir: Path, kind: str) -> list[Path]:
    """The artefact folders of ``kind`` under ``models_dir``, newest first (by name: versions sort by time)."""
    root = models_dir / kind
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
