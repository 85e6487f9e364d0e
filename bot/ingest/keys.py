"""Keys that must fit a bounded, indexed column, whatever length the sender gave them.

Alertmanager's ``groupKey`` holds every grouping label (all of them with ``group_by: ['...']``), so it has
no upper bound. A key that fits is stored as it is; a longer one keeps its start (for people) and ends
with the SHA-256 of the whole value (for identity), so two keys never share a stored form by accident.
The full value stays readable elsewhere: the alert's ``group_key`` and the delivery's body.
"""

from __future__ import annotations

import hashlib

_DIGEST_LENGTH = 64  # hex characters of a SHA-256
_SEPARATOR = "#sha256:"


def bounded_key(value: str, limit: int) -> str:
    """``value`` when it has at most ``limit`` characters, else its prefix and digest, exactly ``limit`` long."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    keep = limit - len(_SEPARATOR) - _DIGEST_LENGTH
    if keep < 0:
        raise ValueError(f"a limit of {limit} characters cannot hold a digest")
    return f"{value[:keep]}{_SEPARATOR}{digest}"
