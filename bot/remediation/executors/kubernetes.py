"""Kubernetes executor through the official client: rollout restart, scale a deployment, delete a pod.

The requests are exactly what ``kubectl`` sends for the same operations (the Role in
``deploy/kubernetes-role.yml`` allows these and nothing else):

- rollout restart: ``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME`` with content type
  ``application/strategic-merge-patch+json`` setting ``spec.template.metadata.annotations
  ["kubectl.kubernetes.io/restartedAt"]`` to the time of the run;
- scale: ``PATCH …/deployments/NAME/scale`` with ``application/merge-patch+json`` ``{"spec": {"replicas": N}}``;
- delete pod: ``DELETE /api/v1/namespaces/NS/pods/NAME``.

The token is read at each call (from the variable or file the catalogue names: projected tokens rotate). The
client's own retries are off: a failure is reported once, as failed, with the API server's Status message. The
API server has no idempotency key, so none is sent; the operations themselves bound a repeat (a scale converges,
a second delete answers 404, a second restart restarts again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api
from kubernetes.client.exceptions import ApiException

from bot.remediation.catalogue import ActionSpec, KubernetesCluster, KubernetesExecutorSpec
from bot.remediation.executors.base import ExecutionResult, redact, truncate
from bot.remediation.parameters import ResolvedRun, kubernetes_object, replicas

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class KubernetesExecutor:
    """Runs kubernetes actions against ``cluster``. ``clock`` stamps restarts; ``environ`` holds ``token_env``."""

    def __init__(
        self,
        cluster: KubernetesCluster,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cluster = cluster
        self._environ = os.environ if environ is None else environ
        self._clock = clock

    def preview(self, action: ActionSpec, run: ResolvedRun) -> str:
        spec = _spec(action)
        namespace, name = kubernetes_object(action, run.params)
        if spec.operation == "rollout-restart":
            return (
                f"PATCH deployment {namespace}/{name} (strategic merge): set the pod template annotation "
                f"{RESTARTED_AT} to the time of the run, so that its pods are replaced one by one"
            )
        if spec.operation == "scale":
            return f"PATCH deployment {namespace}/{name} scale: spec.replicas = {replicas(action, run.params)}"
        return f"DELETE pod {namespace}/{name} (its controller, if any, creates a replacement)"

    def execute(self, action: ActionSpec, run: ResolvedRun, idempotency_key: str, tries: int = 1) -> ExecutionResult:
        """One call to the API server, whatever ``tries`` (no idempotency key to make a repeat safe)."""
        spec = _spec(action)
        namespace, name = kubernetes_object(action, run.params)
        try:
            token = self._token()
        except OSError as exc:
            return ExecutionResult(
                "failed", f"cannot read the Kubernetes token: {exc.strerror or exc}; nothing was sent"
            )
        if not token:
            return ExecutionResult("failed", "the Kubernetes token is empty; nothing was sent")
        timeout = action.timeout.total_seconds()
        what = {
            "rollout-restart": f"rollout restart of deployment {namespace}/{name}",
            "scale": f"scale of deployment {namespace}/{name}",
            "delete-pod": f"delete of pod {namespace}/{name}",
        }[spec.operation]
        try:
            with ApiClient(self._configuration(token)) as api:
                resp = self._call(api, action, spec, namespace, name, run, timeout)
        except ApiException as exc:
            status = _status(exc)
            message = status.get("message") or exc.reason or "no message"
            response = {"status": exc.status, "reason": status.get("reason") or exc.reason, "message": message}
            return ExecutionResult("failed", f"{what}: {exc.status} {message}", redact(response, [token]))
        except urllib3.exceptions.HTTPError as exc:
            response = {"error": type(exc).__name__, "detail": truncate(str(exc), 300)}
            unsent = isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)
            effect = "nothing was sent" if unsent else "it may have taken effect"
            summary = f"{what}: no answer from the API server ({type(exc).__name__}); {effect}"
            return ExecutionResult("failed", summary, redact(response, [token]))
        body = _json(resp.data)
        meta = body.get("metadata") or {}
        response = {
            "status": resp.status,
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if spec.operation == "scale":
            response["replicas"] = (body.get("spec") or {}).get("replicas")
        return ExecutionResult("succeeded", f"{what}: done ({resp.status})", redact(response, [token]))

    def _call(
        self,
        api: ApiClient,
        action: ActionSpec,
        spec: KubernetesExecutorSpec,
        namespace: str,
        name: str,
        run: ResolvedRun,
        timeout: float,
    ) -> Any:
        if spec.operation == "rollout-restart":
            stamp = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            restart: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
            return AppsV1Api(api).patch_namespaced_deployment(
                name,
                namespace,
                restart,
                _content_type=STRATEGIC_MERGE,
                _request_timeout=timeout,
                _preload_content=False,
            )
        if spec.operation == "scale":
            body = {"spec": {"replicas": replicas(action, run.params)}}
            return AppsV1Api(api).patch_namespaced_deployment_scale(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=timeout, _preload_content=False
            )
        return CoreV1Api(api).delete_namespaced_pod(name, namespace, _request_timeout=timeout, _preload_content=False)

    def _token(self) -> str:
        if self._cluster.token_env:
            return self._environ.get(self._cluster.token_env, "").strip()
        assert self._cluster.token_file is not None
        return Path(self._cluster.token_file).read_text(encoding="utf-8").strip()

    def _configuration(self, token: str) -> Configuration:
        conf = Configuration(
            host=self._cluster.api_server.rstrip("/"),
            api_key={"BearerToken": token},
            api_key_prefix={"BearerToken": "Bearer"},
            ssl_ca_cert=self._cluster.ca_file,
            verify_ssl=self._cluster.verify_tls,
            retries=False,  # no retry: urllib3 raises the error itself
        )
        return conf


def _spec(action: ActionSpec) -> KubernetesExecutorSpec:
    if not isinstance(action.executor, KubernetesExecutorSpec):
        raise TypeError(f"{action.name} is not a kubernetes action")
    return action.executor


def _json(data: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _status(exc: ApiException) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return _json(body.encode() if isinstance(body, str) else None)
