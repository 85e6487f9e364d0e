"""Executors against real local endpoints: the exact request each sends, and how failures are reported.

HTTP: the recording loopback target of tests/remediation_support.py (timeouts, 5xx, retries only when idempotent,
secrets redacted). Kubernetes: the API stand-in (tests/kube_standin.py) with the Role from
deploy/kubernetes-role.yml (404/409/403/415/401). Program: a real executable, its argv and environment as it
received them, no shell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, AppsV1Api, Configuration
from kubernetes.client.exceptions import ApiException

from bot.remediation.catalogue import ActionSpec, Catalogue, KubernetesCluster
from bot.remediation.executors import CatalogueExecutor
from bot.remediation.executors.http import HttpExecutor
from bot.remediation.executors.kubernetes import KubernetesExecutor
from bot.remediation.executors.program import ProgramExecutor
from bot.remediation.parameters import ResolvedRun, resolve_run
from tests.kube_standin import TOKEN, KubeStandin
from tests.remediation_support import Target, recording_target
from tests.support import free_port

SECRET = "s3cr3t-ci-token-value"
KEY = "idem-0123456789abcdef"


@pytest.fixture
def endpoint() -> Iterator[Target]:
    with recording_target() as recording:
        yield recording


def http_action(url: str, *, idempotent: bool = False, timeout: str = "2s") -> ActionSpec:
    text = f"""
actions:
  - name: rollback
    description: roll back
    executor:
      type: http
      url: "{url}"
      auth_env: CI_TOKEN
      auth_scheme: Bearer
      headers: {{X-Source: incibot}}
      body: {{ref: main, variables: {{SERVICE: "{{service}}", REPLICAS: "{{replicas}}"}}}}
    params:
      service: {{type: string, pattern: "[a-z-]+", default: "{{labels.service}}"}}
      replicas: {{type: integer, min: 1, max: 9}}
    risk: low
    timeout: {timeout}
    idempotent: {str(idempotent).lower()}
"""
    action = Catalogue.parse(text).get("rollback")
    assert action is not None
    return action


def _run(action: ActionSpec) -> ResolvedRun:
    return resolve_run(action, {"replicas": "3"}, {"service": "checkout"})


def test_http_sends_the_exact_request_and_redacts_the_secret(endpoint: Target) -> None:
    action = http_action(endpoint.url)
    executor = HttpExecutor(environ={"CI_TOKEN": SECRET})
    preview = executor.preview(action, _run(action))
    assert endpoint.calls == [] and SECRET not in preview
    assert preview.startswith(f"POST {endpoint.url} with JSON ") and "$CI_TOKEN" in preview
    result = executor.execute(action, _run(action), KEY)
    [request] = endpoint.calls
    assert (request.method, request.path) == ("POST", "/hooks/restart")
    headers = request.headers
    assert request.key == KEY
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert headers["content-type"] == "application/json" and headers["x-source"] == "incibot"
    assert request.json() == {"ref": "main", "variables": {"SERVICE": "checkout", "REPLICAS": 3}}
    assert result.ok and result.outcome == "succeeded" and "answered 200" in result.summary
    assert result.response["status"] == 200 and result.response["body"]["ok"] is True
    assert SECRET not in json.dumps(result.response) and "[redacted]" in json.dumps(result.response)


def test_http_without_its_secret_sends_nothing(endpoint: Target) -> None:
    action = http_action(endpoint.url)
    result = HttpExecutor(environ={}).execute(action, _run(action), KEY)
    assert result.outcome == "failed" and "$CI_TOKEN is not set" in result.summary
    assert endpoint.calls == []


@pytest.mark.parametrize(("idempotent", "calls"), [(False, 1), (True, 2)])
def test_http_5xx_fails_and_is_retried_only_when_idempotent(endpoint: Target, idempotent: bool, calls: int) -> None:
    endpoint.replies = [(503, 0.0)] * 3  # tries=2 bounds the calls
    action = http_action(endpoint.url, idempotent=idempotent)
    result = HttpExecutor(environ={"CI_TOKEN": SECRET}).execute(action, _run(action), KEY, tries=2)
    assert result.outcome == "failed" and "503" in result.summary
    assert len(endpoint.calls) == calls and result.response["attempts"] == calls
    assert {call.key for call in endpoint.calls} == {KEY}  # a retry keeps its key


def test_http_idempotent_retry_can_succeed(endpoint: Target) -> None:
    endpoint.replies = [(502, 0.0), (201, 0.0)]
    action = http_action(endpoint.url, idempotent=True)
    result = HttpExecutor(environ={"CI_TOKEN": SECRET}).execute(action, _run(action), KEY, tries=2)
    assert result.ok and result.response["attempts"] == 2


def test_http_timeout_is_a_failure_that_says_it_may_have_acted(endpoint: Target) -> None:
    endpoint.replies = [(200, 1.0)]
    action = http_action(endpoint.url, timeout="200ms")
    started = time.monotonic()
    result = HttpExecutor(environ={"CI_TOKEN": SECRET}).execute(action, _run(action), KEY)
    assert time.monotonic() - started < 0.9
    assert result.outcome == "failed" and "may have taken effect" in result.summary
    assert result.response["error"] == "ReadTimeout" and len(endpoint.calls) == 1


def test_http_unreachable_and_redirects_fail() -> None:
    action = http_action(f"http://127.0.0.1:{free_port()}/hook")
    result = HttpExecutor(environ={"CI_TOKEN": SECRET}).execute(action, _run(action), KEY)
    assert result.outcome == "failed" and "nothing was sent" in result.summary


# --- Kubernetes ---------------------------------------------------------------------------------------------

K8S_ACTIONS = """
kubernetes: {api_server: "URL", token_env: KUBE_TOKEN}
actions:
  - name: restart
    description: restart
    executor: {type: kubernetes, operation: rollout-restart, namespace: "{namespace}", name: "{deployment}"}
    params:
      namespace: {type: string, pattern: "[a-z-]+", default: "{labels.namespace}"}
      deployment: {type: string, pattern: "[a-z-]+", default: "{labels.service}"}
    risk: low
  - name: scale
    description: scale
    executor: {type: kubernetes, operation: scale, namespace: "{namespace}", name: "{deployment}", replicas: "{n}"}
    params:
      namespace: {type: string, pattern: "[a-z-]+", default: "{labels.namespace}"}
      deployment: {type: string, pattern: "[a-z-]+", default: "{labels.service}"}
      n: {type: integer, min: 0, max: 10}
    risk: low
  - name: kill
    description: delete a pod
    executor: {type: kubernetes, operation: delete-pod, namespace: "{namespace}", name: "{pod}"}
    params:
      namespace: {type: string, pattern: "[a-z-]+", default: "{labels.namespace}"}
      pod: {type: string, pattern: "[a-z0-9-]+"}
    risk: low
"""
NOW = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
LABELS = {"namespace": "shop", "service": "checkout"}


@dataclass
class Cluster:
    standin: KubeStandin
    catalogue: Catalogue
    executor: KubernetesExecutor
    url: str

    def run(self, name: str, given: dict[str, str] | None = None, labels: dict[str, str] = LABELS) -> Any:
        action = self.catalogue.get(name)
        assert action is not None
        return self.executor.execute(action, resolve_run(action, given or {}, labels), KEY)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    standin = KubeStandin()
    standin.add_deployment("shop", "checkout", replicas=2)
    standin.add_deployment("other", "checkout")
    standin.add_pod("shop", "checkout-7d9f-abcde")
    with standin.serve() as url:
        catalogue = Catalogue.parse(K8S_ACTIONS.replace("URL", url))
        assert catalogue.kubernetes is not None
        executor = KubernetesExecutor(catalogue.kubernetes, environ={"KUBE_TOKEN": TOKEN}, clock=lambda: NOW)
        yield Cluster(standin, catalogue, executor, url)


def _only(standin: KubeStandin) -> Any:
    [request] = standin.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"].startswith("application/json")
    return request


def test_rollout_restart_is_a_strategic_merge_patch_of_the_template_annotation(cluster: Cluster) -> None:
    action = cluster.catalogue.get("restart")
    assert action is not None
    preview = cluster.executor.preview(action, resolve_run(action, {}, LABELS))
    assert "kubectl.kubernetes.io/restartedAt" in preview and cluster.standin.requests == []
    result = cluster.run("restart")
    request = _only(cluster.standin)
    assert (request.method, request.path, request.query) == (
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        {},
    )
    assert request.headers["content-type"] == "application/strategic-merge-patch+json"
    annotations = {"kubectl.kubernetes.io/restartedAt": "2026-03-01T12:30:05Z"}
    assert request.body == {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    assert result.ok and result.response["kind"] == "Deployment"
    deployment = cluster.standin.deployments[("shop", "checkout")]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == annotations
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "checkout"}  # merged, not replaced


def test_scale_patches_the_scale_subresource(cluster: Cluster) -> None:
    result = cluster.run("scale", {"n": "5"})
    request = _only(cluster.standin)
    assert (request.method, request.path) == ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/checkout/scale")
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert request.body == {"spec": {"replicas": 5}}
    assert result.ok and result.response["replicas"] == 5
    assert cluster.standin.deployments[("shop", "checkout")]["spec"]["replicas"] == 5


def test_delete_pod_then_404_when_it_is_gone(cluster: Cluster) -> None:
    assert cluster.run("kill", {"pod": "checkout-7d9f-abcde"}).ok
    request = _only(cluster.standin)
    assert (request.method, request.path, request.body) == (
        "DELETE",
        "/api/v1/namespaces/shop/pods/checkout-7d9f-abcde",
        None,
    )
    assert ("shop", "checkout-7d9f-abcde") not in cluster.standin.pods
    again = cluster.run("kill", {"pod": "checkout-7d9f-abcde"})
    assert again.outcome == "failed" and again.response["status"] == 404
    assert again.summary == 'delete of pod shop/checkout-7d9f-abcde: 404 pods "checkout-7d9f-abcde" not found'


def test_missing_deployment_and_conflict_fail_with_the_api_message(cluster: Cluster) -> None:
    missing = cluster.run("restart", labels={"namespace": "shop", "service": "nope"})
    assert missing.outcome == "failed" and 'deployments.apps "nope" not found' in missing.summary
    cluster.standin.conflict_once("deployments", "shop", "checkout")
    conflict = cluster.run("scale", {"n": "4"})
    assert conflict.outcome == "failed" and conflict.response["status"] == 409
    assert conflict.response["reason"] == "Conflict" and "the object has been modified" in conflict.summary
    assert cluster.standin.deployments[("shop", "checkout")]["spec"]["replicas"] == 2  # unchanged


def test_outside_the_role_is_forbidden(cluster: Cluster) -> None:
    other = cluster.run("restart", labels={"namespace": "other", "service": "checkout"})
    assert other.outcome == "failed" and other.response["status"] == 403
    assert 'cannot patch resource "deployments" in API group "apps" in the namespace "other"' in other.summary
    conf = Configuration(host=cluster.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"})
    with ApiClient(conf) as api, pytest.raises(ApiException) as denied:
        AppsV1Api(api).delete_namespaced_deployment("checkout", "shop")  # a verb the Role does not grant
    assert denied.value.status == 403
    assert 'cannot delete resource "deployments"' in json.loads(str(denied.value.body))["message"]


def test_a_wrong_patch_content_type_is_415(cluster: Cluster) -> None:
    conf = Configuration(host=cluster.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"})
    body = {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}
    with ApiClient(conf) as api, pytest.raises(ApiException) as refused:
        AppsV1Api(api).patch_namespaced_deployment("checkout", "shop", body, _content_type="application/json")
    assert refused.value.status == 415 and "UnsupportedMediaType" in str(refused.value.body)
    assert "annotations" not in cluster.standin.deployments[("shop", "checkout")]["spec"]["template"]["metadata"]


def test_a_bad_token_is_401_and_never_reported(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.catalogue.kubernetes is not None
    wrong = KubernetesExecutor(cluster.catalogue.kubernetes, environ={"KUBE_TOKEN": "wrong-token-1234"})
    action = cluster.catalogue.get("restart")
    assert action is not None
    result = wrong.execute(action, resolve_run(action, {}, LABELS), KEY)
    assert result.outcome == "failed" and result.response["status"] == 401
    assert "wrong-token-1234" not in repr(result)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    from_file = KubernetesCluster(api_server=cluster.url, token_file=str(token_file))
    assert KubernetesExecutor(from_file).execute(action, resolve_run(action, {}, LABELS), KEY).ok  # read per call
    token_file.unlink()
    unreadable = KubernetesExecutor(from_file).execute(action, resolve_run(action, {}, LABELS), KEY)
    assert unreadable.outcome == "failed" and "cannot read the Kubernetes token" in unreadable.summary


# --- Program ------------------------------------------------------------------------------------------------

SCRIPT = """#!{python}
import json, os, sys, time
if os.environ.get("PATH") and len(sys.argv) > 2 and sys.argv[2] == "slow":
    time.sleep(5)
print(json.dumps({{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}}))
print("x" * 3000)
sys.exit(3 if len(sys.argv) > 2 and sys.argv[2] == "fail" else 0)
"""


def program_action(path: Path, *, timeout: str = "5s") -> ActionSpec:
    text = f"""
actions:
  - name: diagnose
    description: diagnose
    executor: {{type: program, path: "{path}", args: ["--pod", "{{pod}}", "--lines", "{{lines}}"], max_output: 2000}}
    params:
      pod: {{type: string, pattern: "[a-z0-9-]+"}}
      lines: {{type: integer, min: 1, max: 100, default: 20}}
    risk: low
    timeout: {timeout}
"""
    action = Catalogue.parse(text).get("diagnose")
    assert action is not None
    return action


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "diagnose"
    path.write_text(SCRIPT.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_program_gets_the_exact_argv_a_bare_environment_and_no_shell(
    script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIBOT_CI_TOKEN", SECRET)
    action = program_action(script)
    executor = ProgramExecutor()
    run = resolve_run(action, {"pod": "checkout-1"}, {})
    assert (
        executor.preview(action, run)
        == f"run {script} with arguments ['--pod', 'checkout-1', '--lines', '20'] (no shell; timeout 5s)"
    )
    result = executor.execute(action, run, KEY)
    assert result.ok and result.response["exit_code"] == 0
    seen = json.loads(result.response["stdout"].splitlines()[0])
    assert seen["argv"] == [str(script), "--pod", "checkout-1", "--lines", "20"]
    assert set(seen["env"]) - {"LC_CTYPE"} == {"PATH", "LANG", "INCIBOT_IDEMPOTENCY_KEY"}
    assert seen["env"]["INCIBOT_IDEMPOTENCY_KEY"] == KEY and seen["cwd"] == "/"
    assert "more characters]" in result.response["stdout"]  # cut at max_output
    # Even a value that never passed resolve_run reaches the program as one literal argument, never a shell.
    marker = tmp_path / "pwned"
    raw = ResolvedRun("diagnose", {"pod": f"$(touch {marker}); touch {marker}", "lines": 1}, str(script))
    assert executor.execute(action, raw, KEY).ok and not marker.exists()


def test_program_failures(script: Path, tmp_path: Path) -> None:
    executor = ProgramExecutor()
    failing = executor.execute(program_action(script), ResolvedRun("diagnose", {"pod": "fail", "lines": 1}), KEY)
    assert failing.outcome == "failed" and failing.summary == "diagnose exited with status 3"
    started = time.monotonic()
    slow = executor.execute(
        program_action(script, timeout="300ms"), ResolvedRun("diagnose", {"pod": "slow", "lines": 1}), KEY
    )
    assert slow.outcome == "failed" and "was killed" in slow.summary and time.monotonic() - started < 3
    missing = executor.execute(
        program_action(tmp_path / "nope"), ResolvedRun("diagnose", {"pod": "a", "lines": 1}), KEY
    )
    assert missing.outcome == "failed" and "does not exist; nothing was run" in missing.summary
    script.chmod(0o777)
    writable = executor.execute(program_action(script), ResolvedRun("diagnose", {"pod": "a", "lines": 1}), KEY)
    assert writable.outcome == "failed" and "writable by every user" in writable.summary


def test_the_catalogue_executor_dispatches_by_type(script: Path) -> None:
    catalogue = Catalogue.parse(f"""
actions:
  - name: diagnose
    description: diagnose
    executor: {{type: program, path: "{script}", args: ["--pod", "{{pod}}"]}}
    params: {{pod: {{type: string}}}}
    risk: low
""")
    executor = CatalogueExecutor.build(catalogue)
    run = resolve_run(catalogue.actions[0], {"pod": "web-1"}, {})
    assert executor.preview(run).startswith(f"run {script} with arguments ['--pod', 'web-1']")
    assert executor.execute(run, KEY).ok
    gone = executor.execute(ResolvedRun("vanished", {}, "x"), KEY)
    assert gone.outcome == "failed" and "no longer in the catalogue" in gone.summary
    assert os.access(script, os.X_OK)
