"""A Kubernetes API server stand-in on loopback for the kubernetes executor's tests.

It answers the calls the executor makes (deployments: get/patch; deployments/scale: get/patch; pods:
get/delete) the way the API server does, in the API server's order: 401 without the right bearer token, 403 for
a verb outside the Role loaded from ``deploy/kubernetes-role.yml`` (or outside its namespace), 415 for a patch
content type it does not accept, 404 for a missing object, 409 on a conflict (``conflict_once``), each with a
``Status`` body. Every request is recorded: method, path, query, headers, body.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.support import reply_json, serve_handler

ROLE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes-role.yml"
TOKEN = "standin-token-0123456789"
_PATCH_TYPES = {
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}
_ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>apps)/v1)/namespaces/(?P<ns>[^/]+)/(?P<res>deployments|pods)/(?P<name>[^/]+)"
    r"(?:/(?P<sub>scale))?$"
)
_VERBS = {"GET": "get", "PATCH": "patch", "PUT": "update", "DELETE": "delete", "POST": "create"}
_KINDS = {"deployments": "Deployment", "pods": "Pod"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None


class KubeStandin:
    """State (deployments and pods by (namespace, name)) and the requests seen. Use ``serve()``."""

    def __init__(self, role_file: Path = ROLE_FILE, token: str = TOKEN) -> None:
        docs = [d for d in yaml.safe_load_all(role_file.read_text()) if d]
        role = next(d for d in docs if d["kind"] == "Role")
        binding = next(d for d in docs if d["kind"] == "RoleBinding")
        subject = binding["subjects"][0]
        self.user = f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
        self.namespace = role["metadata"]["namespace"]
        self.rules = role["rules"]
        self.token = token
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self._conflicts: set[tuple[str, str, str]] = set()
        self._version = 100
        self._lock = threading.Lock()

    def add_deployment(self, namespace: str, name: str, replicas: int = 2) -> None:
        self.deployments[(namespace, name)] = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": self._next(), "generation": 1},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}}}},
        }

    def add_pod(self, namespace: str, name: str) -> None:
        meta = {"name": name, "namespace": namespace, "resourceVersion": self._next()}
        self.pods[(namespace, name)] = {"kind": "Pod", "apiVersion": "v1", "metadata": meta}

    def conflict_once(self, resource: str, namespace: str, name: str) -> None:
        """The next write to this object gets 409, as when another writer changed it first."""
        self._conflicts.add((resource, namespace, name))

    def allowed(self, group: str, resource: str, verb: str, namespace: str) -> bool:
        if namespace != self.namespace:
            return False
        return any(
            group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
            for r in self.rules
        )

    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Listen on a free loopback port; yields the base URL."""
        with serve_handler(_handler(self)) as url:
            yield url

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """The API server's answer (status, JSON body) to one request."""
        with self._lock:
            body = _parse(raw, headers.get("content-type", ""))
            self.requests.append(Recorded(method, urlsplit(path).path, _query(path), headers, body))
            return self._answer(method, urlsplit(path).path, headers, body)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        route = _ROUTE.match(path)
        if route is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        group, ns, res, name, sub = route["group"] or "", route["ns"], route["res"], route["name"], route["sub"]
        resource = f"{res}/{sub}" if sub else res
        verb = _VERBS.get(method, method.lower())
        qualified = f"{res}.{group}" if group else res
        details = {"name": name, "group": group, "kind": res}
        if not self.allowed(group, resource, verb, ns):
            where = f'in API group "{group}" in the namespace "{ns}"'
            message = (
                f'{qualified} "{name}" is forbidden: User "{self.user}" cannot {verb} resource "{resource}" {where}'
            )
            return _status(403, "Forbidden", message, details)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if method == "PATCH" and content_type not in _PATCH_TYPES:
            accepted = ", ".join(sorted(_PATCH_TYPES))
            message = f"the body of the request was in an unknown format - accepted media types include: {accepted}"
            return _status(415, "UnsupportedMediaType", message)
        store = self.deployments if res == "deployments" else self.pods
        obj = store.get((ns, name))
        if obj is None:
            return _status(404, "NotFound", f'{qualified} "{name}" not found', details)
        if method != "GET" and (res, ns, name) in self._conflicts:
            self._conflicts.discard((res, ns, name))
            message = (
                f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            return _status(409, "Conflict", message, details)
        if method == "GET":
            return 200, _scale(obj) if sub else obj
        if method == "DELETE":
            del store[(ns, name)]
            return 200, obj
        if method == "PATCH":
            if not isinstance(body, dict):
                return _status(400, "BadRequest", "the stand-in applies object patches only")
            if sub:
                replicas = (body.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    return _status(422, "Invalid", "spec.replicas: Invalid value")
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["resourceVersion"] = self._next()
                return 200, _scale(obj)
            _merge(obj, body)
            obj["metadata"]["resourceVersion"] = self._next()
            obj["metadata"]["generation"] += 1
            return 200, obj
        return _status(405, "MethodNotAllowed", f"the server does not allow this method on {resource}")


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge-patch semantics (enough for the maps the executor patches; null deletes a key)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _scale(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment["spec"]["replicas"]},
    }


def _status(code: int, reason: str, message: str, details: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return code, body


def _parse(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _query(path: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(path).query))


def _handler(standin: KubeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = standin.handle(self.command, self.path, headers, raw)
            reply_json(self, status, json.dumps(body).encode())

        do_GET = do_PATCH = do_DELETE = do_PUT = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
