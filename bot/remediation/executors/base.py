"""What every executor returns, and the redaction applied to anything it reports."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.remediation.catalogue import ActionSpec
from bot.remediation.parameters import ResolvedRun

Outcome = Literal["succeeded", "failed", "unknown"]
REDACTED = "[redacted]"
SECRET_KEY = re.compile(r"authorization|token|secret|password|passwd|api[-_]?key|cookie|credential", re.IGNORECASE)
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """``outcome``: succeeded; failed (the target refused or was not reached, or it timed out, see the README);
    unknown (the request may or may not have taken effect). ``response`` is already redacted."""

    outcome: Outcome
    summary: str
    response: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"


class Executor(Protocol):
    """What the runner calls: ``preview`` does no I/O; ``execute`` acts with the given idempotency key, calling
    the target at most ``tries`` times (more than once only for an idempotent action whose call failed in a way
    worth repeating; the runner decides ``tries``, see :mod:`bot.remediation.runner`)."""

    def preview(self, run: ResolvedRun) -> str: ...

    def execute(self, run: ResolvedRun, idempotency_key: str, tries: int = 1) -> ExecutionResult: ...


class KindExecutor(Protocol):
    """One executor type (http, kubernetes, program), given the action's catalogue entry."""

    def preview(self, action: ActionSpec, run: ResolvedRun) -> str: ...

    def execute(
        self, action: ActionSpec, run: ResolvedRun, idempotency_key: str, tries: int = 1
    ) -> ExecutionResult: ...


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` (JSON-like) with secret-looking keys' values, bearer credentials and each of ``secrets``
    (non-empty strings) replaced by ``[redacted]``."""
    known = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    return _redact(value, known)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") else _redact(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
