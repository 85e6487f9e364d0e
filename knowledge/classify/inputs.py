"""How an incident's alerts become one classifier input (no scikit-learn here: cheap to import).

The input is the alerts' canonical texts joined by a blank line; a canonical text has no blank line, so the parts
split back exactly and each can be embedded on its own (the embedder has them cached from correlation).
"""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = "\n\n"
MAX_ALERTS = 8  # distinct alert texts of an incident that it is classified by


def incident_text(texts: Sequence[str]) -> str:
    """An incident's alert canonical texts as one classifier input: the first distinct ones, in order."""
    distinct = list(dict.fromkeys(text.strip() for text in texts if text.strip()))
    return SEPARATOR.join(distinct[:MAX_ALERTS])


def incident_parts(text: str) -> list[str]:
    """The alert texts an input was made of (one for a single alert's text)."""
    return [part for part in text.split(SEPARATOR) if part.strip()] or [text]
