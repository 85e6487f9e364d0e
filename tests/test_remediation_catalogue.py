"""The action catalogue: the sample loads, every error names file:line, defaults come from incident labels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.remediation.catalogue import Catalogue, CatalogueError
from bot.remediation.parameters import ParameterError, resolve_run
from knowledge.runbooks import parse_runbook

SAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "actions.example.yml"

BASE = """\
kubernetes:
  api_server: https://k8s.example:6443
  token_env: KUBE_TOKEN
actions:
  - name: restart
    description: Restart a deployment
    executor:
      type: kubernetes
      operation: rollout-restart
      namespace: "{namespace}"
      name: "{deployment}"
    params:
      namespace:
        type: string
        pattern: "[a-z0-9-]+"
        default: "{labels.namespace}"
      deployment:
        type: string
        default: "{labels.service}"
    risk: medium
    approvers: [U0AAAA, S0GROUP]
  - name: hook
    description: Call the CI
    executor: {type: http, url: "https://ci.example/hook", body: {env: "{env}"}}
    params:
      env: {type: enum, values: [staging, production], default: staging}
    risk: low
"""


def test_the_sample_catalogue_loads_with_its_policy() -> None:
    catalogue = Catalogue.load(SAMPLE)
    names = [a.name for a in catalogue.actions]
    assert names == ["restart-deployment", "scale-deployment", "delete-pod", "rollback-release", "collect-diagnostics"]
    assert {a.executor.type for a in catalogue.actions} == {"kubernetes", "http", "program"}
    scale = catalogue.get("scale-deployment")
    assert scale is not None and scale.risk == "high" and scale.approvals_required == 2  # the risk's minimum
    assert scale.approvers.groups == frozenset({"S0000000001"}) and not scale.approvers.users
    assert scale.expiry == timedelta(minutes=10) and scale.idempotent
    restart = catalogue.get("restart-deployment")
    assert restart is not None and restart.approvers.users == frozenset({"U0000000001"})
    diagnostics = catalogue.get("collect-diagnostics")
    assert (
        diagnostics is not None and diagnostics.approvals_required == 0 and diagnostics.expiry == timedelta(minutes=15)
    )
    assert catalogue.kubernetes is not None and catalogue.kubernetes.token_file is not None
    assert len(catalogue.digest) == 64 and catalogue.get("nope") is None


def test_matching_suggests_by_alert_category_service_and_runbook_first() -> None:
    catalogue = Catalogue.load(SAMPLE)
    crash = catalogue.matching({"alertname": "KubePodCrashLooping", "service": "checkout"})
    assert [a.name for a in crash] == ["restart-deployment", "delete-pod", "collect-diagnostics"]
    assert [a.name for a in catalogue.matching(category="Deploy")] == ["rollback-release"]
    assert catalogue.matching({"alertname": "DiskFull"}, category="infrastructure") == []
    runbook = parse_runbook(
        "k8s/crash", "---\nalerts: [KubePodCrashLooping]\nactions: [collect-diagnostics]\n---\n# x\n"
    )
    assert runbook.actions == ("collect-diagnostics",)
    hits = catalogue.matching({"alertname": "KubePodCrashLooping"}, runbook_actions=runbook.actions)
    assert hits[0].name == "collect-diagnostics"  # what the runbook names comes first
    only_runbook = catalogue.matching({"alertname": "Unrelated"}, runbook_actions=["scale-deployment", "unknown"])
    assert [a.name for a in only_runbook] == ["scale-deployment"]


def _error(text: str) -> str:
    with pytest.raises(CatalogueError) as caught:
        Catalogue.parse(text, source="actions.yml")
    return str(caught.value)


def _line_of(text: str, needle: str) -> int:
    """The first line holding ``needle`` (``=needle``: the first line that is exactly it, indentation aside)."""
    exact = needle.startswith("=")
    return next(
        i + 1 for i, line in enumerate(text.splitlines()) if (line.strip() == needle[1:] if exact else needle in line)
    )


@pytest.mark.parametrize(
    ("old", "new", "anchor", "says"),
    [
        ("risk: medium", "risk: severe", "risk: severe", "'low', 'medium' or 'high'"),
        ("risk: medium\n", "risk: high\n    approvals: 1\n", "approvals: 1", "risk high needs at least 2 approval"),
        ("    approvers: [U0AAAA, S0GROUP]\n", "", "- name: restart", "approvers are required"),
        ("[U0AAAA, S0GROUP]", "[U0AAAA, bob]", "approvers: [U0AAAA, bob]", "'bob' is neither"),
        ('pattern: "[a-z0-9-]+"', 'pattern: "[a-z"', "pattern:", "not a valid regular expression"),
        ('name: "{deployment}"', 'name: "{deploy}"', 'name: "{deploy}"', "{deploy} names no parameter"),
        ("default: staging", 'default: ";id"', 'default: ";id"', "contains ';'"),
        ("default: staging", "default: qa", "default: qa", "must be one of staging, production"),
        ('default: "{labels.service}"', 'default: "{env.HOME}"', "{env.HOME}", "only use {labels.NAME}"),
        ("risk: low", "risk: low\n    timeout: 20 years", "20 years", "not a duration like 30s"),
        ("risk: low", "risk: low\n    colour: red", "colour: red", "Extra inputs are not permitted"),
        ("name: hook", "name: restart  # again", "# again", "defined twice (first at line 5)"),
        ("name: hook", "name: Hook;id", "Hook;id", "should match pattern"),
        ("values: [staging, production], ", "", "env: {type: enum", "an enum parameter needs 'values'"),
        ('url: "https://ci.example/hook"', 'url: "https://ci/{env}"', "https://ci/{env}", "should match pattern"),
        ("operation: rollout-restart", "operation: scale", "executor:", "'replicas' is required for scale"),
        (
            "type: string\n        pattern",
            "type: integer\n        pattern",
            "=namespace:",
            "only for string parameters",
        ),
        ("    risk: low\n", "    risk: low\n    risk: high\n", "risk: high", "duplicate key 'risk'"),
        ("executor: {type: http,", "executor: {type: http,,", "type: http,,", "not valid YAML"),
        ("  token_env: KUBE_TOKEN\n", "", "kubernetes:", "give one of 'token_env' or 'token_file'"),
        (
            "body: {env:",
            "headers: {X-Api-Key: k}, body: {env:",
            "X-Api-Key",
            "holds a secret: use auth_header and auth_env",
        ),
        ("values: [staging, production]", 'values: [staging, "prod;id"]', "prod;id", "'prod;id' contains ';'"),
    ],
)
def test_each_error_names_its_line(old: str, new: str, anchor: str, says: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    message = _error(text)
    assert message.startswith(f"actions.yml:{_line_of(text, anchor)}:"), message
    assert says in message


def test_a_kubernetes_action_needs_the_cluster_section_and_files_name_themselves(tmp_path: Path) -> None:
    text = BASE.replace("kubernetes:\n  api_server: https://k8s.example:6443\n  token_env: KUBE_TOKEN\n", "")
    assert "needs the top-level 'kubernetes' section" in _error(text)
    assert _error(text).startswith(f"actions.yml:{_line_of(text, 'executor:')}:")
    path = tmp_path / "mine.yml"
    path.write_text("actions: []\n  oops: [\n")
    with pytest.raises(CatalogueError, match=rf"^{path}:\d+: not valid YAML"):
        Catalogue.load(path)
    with pytest.raises(CatalogueError, match="cannot read the actions file"):
        Catalogue.load(tmp_path / "missing.yml")
    assert _error("") == "actions.yml:1: the actions file is empty"


def test_defaults_come_from_the_incident_labels_and_given_values_win() -> None:
    catalogue = Catalogue.parse(BASE)
    restart = catalogue.get("restart")
    assert restart is not None
    run = resolve_run(restart, {}, {"namespace": "shop", "service": "checkout"})
    assert dict(run.params) == {"namespace": "shop", "deployment": "checkout"}
    assert run.target == "kubernetes:shop/deployment/checkout"
    given = resolve_run(restart, {"deployment": "payments", "namespace": ""}, {"namespace": "shop", "service": "x"})
    assert dict(given.params) == {"namespace": "shop", "deployment": "payments"}  # "" counts as not given
    with pytest.raises(ParameterError) as missing:
        resolve_run(restart, {}, {"service": "checkout"})
    assert missing.value.field == "namespace" and "names a label the incident lacks" in missing.value.message
    hook = catalogue.get("hook")
    assert hook is not None
    assert resolve_run(hook, {}, {}).params == {"env": "staging"}
    assert resolve_run(hook, {}, {}).target == "POST https://ci.example/hook"


def test_the_fingerprint_binds_action_params_and_target() -> None:
    restart = Catalogue.parse(BASE).get("restart")
    assert restart is not None
    labels = {"namespace": "shop", "service": "checkout"}
    one = resolve_run(restart, {}, labels)
    assert one.fingerprint() == resolve_run(restart, {"deployment": "checkout"}, labels).fingerprint()
    assert one.fingerprint() != resolve_run(restart, {"deployment": "checkout2"}, labels).fingerprint()
    assert len(one.fingerprint()) == 64 and int(one.fingerprint(), 16) >= 0
