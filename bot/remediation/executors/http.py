"""HTTP webhook executor: JSON to the catalogue's fixed URL, with an ``Idempotency-Key`` header.

The auth header's value is read from the environment variable the catalogue names, at each call; it never
appears in a preview, a log line or a result. Outcomes: 2xx succeeded; anything else failed. A timeout is
reported as failed too (the issue's rule), and its summary says the request was sent and may have taken
effect. The executor retries only as the runner allows: up to ``tries`` requests (1 unless the action is
idempotent), with the same key, the next one only after a connection error, a timeout or a 5xx. How many tries a
run gets, and so how often one approval can reach the target at most, is the runner's rule
(:mod:`bot.remediation.runner`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from bot.remediation.catalogue import ActionSpec, HttpExecutorSpec
from bot.remediation.executors.base import ExecutionResult, redact, truncate
from bot.remediation.parameters import ResolvedRun, render_json

MAX_BODY = 2000  # characters of the target's response kept
USER_AGENT = "incibot-remediation"


class HttpExecutor:
    """Runs http actions. ``environ`` defaults to the process environment; ``transport`` is for tests."""

    def __init__(self, environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._transport = transport

    def preview(self, action: ActionSpec, run: ResolvedRun) -> str:
        spec = _spec(action)
        body = json.dumps(render_json(spec.body, run.params), sort_keys=True)
        auth = f", {spec.auth_header} from ${spec.auth_env}" if spec.auth_env else ""
        return f"{spec.method} {spec.url} with JSON {body} (Idempotency-Key header{auth}; timeout {_secs(action)})"

    def execute(self, action: ActionSpec, run: ResolvedRun, idempotency_key: str, tries: int = 1) -> ExecutionResult:
        spec = _spec(action)
        headers = {**spec.headers, "Idempotency-Key": idempotency_key, "User-Agent": USER_AGENT}
        secret = ""
        if spec.auth_env:
            secret = self._environ.get(spec.auth_env, "")
            if not secret:
                return ExecutionResult("failed", f"${spec.auth_env} is not set; nothing was sent")
            headers[spec.auth_header] = f"{spec.auth_scheme} {secret}" if spec.auth_scheme else secret
        body = render_json(spec.body, run.params)
        attempts = max(1, tries) if action.idempotent else 1
        with httpx.Client(transport=self._transport, follow_redirects=False, trust_env=False) as client:
            attempt, (result, retryable) = 1, self._once(client, spec, action, headers, body)
            while retryable and attempt < attempts:
                attempt, (result, retryable) = attempt + 1, self._once(client, spec, action, headers, body)
        response = {**result.response, "attempts": attempt}
        return ExecutionResult(result.outcome, result.summary, redact(response, [secret]))

    @staticmethod
    def _once(
        client: httpx.Client, spec: HttpExecutorSpec, action: ActionSpec, headers: dict[str, str], body: Any
    ) -> tuple[ExecutionResult, bool]:
        """One request: its result, and whether an idempotent action may try again."""
        try:
            resp = client.request(spec.method, spec.url, json=body, headers=headers, timeout=_timeout(action))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return ExecutionResult("failed", f"could not connect to {spec.url}: nothing was sent", _error(exc)), True
        except httpx.TimeoutException as exc:
            summary = f"no response from {spec.url} within {_secs(action)}; it was sent and may have taken effect"
            return ExecutionResult("failed", summary, _error(exc)), True
        except httpx.HTTPError as exc:
            return ExecutionResult(
                "failed", f"{spec.method} {spec.url} failed: {type(exc).__name__}", _error(exc)
            ), False
        response = {"status": resp.status_code, "body": _body(resp)}
        if resp.is_success:
            return ExecutionResult(
                "succeeded", f"{spec.method} {spec.url} answered {resp.status_code}", response
            ), False
        summary = f"{spec.method} {spec.url} answered {resp.status_code} {resp.reason_phrase}".rstrip()
        return ExecutionResult("failed", summary, response), resp.status_code >= 500


def _spec(action: ActionSpec) -> HttpExecutorSpec:
    if not isinstance(action.executor, HttpExecutorSpec):
        raise TypeError(f"{action.name} is not an http action")
    return action.executor


def _timeout(action: ActionSpec) -> httpx.Timeout:
    return httpx.Timeout(action.timeout.total_seconds())


def _secs(action: ActionSpec) -> str:
    return f"{action.timeout.total_seconds():g}s"


def _error(exc: Exception) -> dict[str, Any]:
    return {"error": type(exc).__name__, "detail": truncate(str(exc), 300)}


def _body(resp: httpx.Response) -> Any:
    try:
        parsed = resp.json()
    except ValueError:
        return truncate(resp.text, MAX_BODY)
    text = json.dumps(parsed)
    return parsed if len(text) <= MAX_BODY else truncate(text, MAX_BODY)
