"""Executors: HTTP webhooks, Kubernetes API calls and allow-listed local programs. No shell, ever.

``CatalogueExecutor`` is the one object the runner holds: it looks the run's action up in the catalogue and
hands it to the executor of its type.
"""

from __future__ import annotations

from bot.remediation.catalogue import Catalogue
from bot.remediation.executors.base import ExecutionResult, Executor, KindExecutor, Outcome, redact
from bot.remediation.parameters import ResolvedRun

__all__ = ["CatalogueExecutor", "ExecutionResult", "Executor", "KindExecutor", "Outcome", "redact"]


class CatalogueExecutor:
    """Dispatches a run to the executor of its action's type (``executors`` maps "http" / "kubernetes" /
    "program" to one; ``build`` makes the default set)."""

    def __init__(self, catalogue: Catalogue, executors: dict[str, KindExecutor]) -> None:
        self._catalogue = catalogue
        self._executors = executors

    @classmethod
    def build(cls, catalogue: Catalogue) -> CatalogueExecutor:
        """The standard executors, configured from ``catalogue`` (its ``kubernetes`` section)."""
        from bot.remediation.executors.http import HttpExecutor
        from bot.remediation.executors.program import ProgramExecutor

        kinds: dict[str, KindExecutor] = {"http": HttpExecutor(), "program": ProgramExecutor()}
        if catalogue.kubernetes is not None:  # the client takes seconds to import: only when configured
            from bot.remediation.executors.kubernetes import KubernetesExecutor

            kinds["kubernetes"] = KubernetesExecutor(catalogue.kubernetes)
        return cls(catalogue, kinds)

    def preview(self, run: ResolvedRun) -> str:
        action = self._catalogue.get(run.action)
        if action is None:
            return f"{run.action}: not in the catalogue"
        executor = self._executors.get(action.executor.type)
        if executor is None:
            return f"{run.action}: no {action.executor.type} executor is configured"
        return executor.preview(action, run)

    def execute(self, run: ResolvedRun, idempotency_key: str, tries: int = 1) -> ExecutionResult:
        action = self._catalogue.get(run.action)
        if action is None:
            return ExecutionResult("failed", f"{run.action} is no longer in the catalogue; nothing was run")
        executor = self._executors.get(action.executor.type)
        if executor is None:
            return ExecutionResult("failed", f"no {action.executor.type} executor is configured; nothing was run")
        return executor.execute(action, run, idempotency_key, tries)
