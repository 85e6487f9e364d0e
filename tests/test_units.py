"""Small pure parts: settings parsing, fingerprints, severities, the published generic schema, torch build."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.incidents.views import facts
from bot.ingest.auth import TokenVerifier, credential_from_headers
from bot.ingest.generic import json_schema
from bot.settings import Settings
from knowledge.alerts import normalize_severity
from knowledge.fingerprint import labels_fingerprint

ROOT = Path(__file__).resolve().parent.parent


def test_settings_parse_tokens_durations_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_INGEST_TOKENS", "shared-one, pagerduty=pd-key ,grafana=gf")
    monkeypatch.setenv("INCIBOT_REOPEN_WINDOW", "45m")
    monkeypatch.setenv("INCIBOT_IGNORE_ALERTNAMES", "Watchdog, DeadMansSnitch")
    settings = Settings()
    assert [(source, token.get_secret_value()) for source, token in settings.ingest_tokens] == [
        (None, "shared-one"),
        ("pagerduty", "pd-key"),
        ("grafana", "gf"),
    ]
    assert settings.reopen_window == timedelta(minutes=45)
    assert settings.ignore_alertnames == {"Watchdog", "DeadMansSnitch"}
    assert "pd-key" not in repr(settings)  # secrets never print


@pytest.mark.parametrize(("raw", "expected"), [("90s", 90), ("2h", 7200), ("1d", 86400), ("600", 600)])
def test_durations(monkeypatch: pytest.MonkeyPatch, raw: str, expected: int) -> None:
    monkeypatch.setenv("INCIBOT_QUIET_AFTER", raw)
    assert Settings().quiet_after == timedelta(seconds=expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INCIBOT_INGEST_TOKENS", "nagios=abc"),
        ("INCIBOT_INGEST_TOKENS", "grafana="),
        ("INCIBOT_REOPEN_WINDOW", "soon"),
        ("INCIBOT_MAX_BODY_BYTES", "0"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_default_database_is_sqlite_in_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("INCIBOT_DATABASE_URL", raising=False)
    assert Settings().effective_database_url == f"sqlite:///{tmp_path}/incibot.db"


def test_fingerprint_is_fnv1a_over_sorted_labels() -> None:
    assert labels_fingerprint({}) == "cbf29ce484222325"  # the FNV-1a 64-bit offset basis
    a = labels_fingerprint({"alertname": "X", "pod": "p1"})
    assert a == labels_fingerprint({"pod": "p1", "alertname": "X"})
    assert a != labels_fingerprint({"alertname": "X", "pod": "p2"})
    # The separator keeps name/value boundaries apart.
    assert labels_fingerprint({"ab": "c"}) != labels_fingerprint({"a": "bc"})
    assert len(a) == 16


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CRITICAL", "critical"),
        ("page", "critical"),
        ("warn", "warning"),
        ("P5-whatever", "warning"),
        ("", None),
        (None, None),
    ],
)
def test_severity_words(raw: str | None, expected: str | None) -> None:
    assert normalize_severity(raw) == expected


def test_token_verifier_scopes_and_header_forms() -> None:
    from pydantic import SecretStr

    verifier = TokenVerifier([(None, SecretStr("all")), ("grafana", SecretStr("gf"))])
    assert verifier.verify("alertmanager", "all")
    assert verifier.verify("grafana", "gf")
    assert not verifier.verify("alertmanager", "gf")
    assert not verifier.verify("grafana", None)
    assert credential_from_headers({"authorization": "Bearer  abc "}) == "abc"
    assert credential_from_headers({"authorization": "Basic dXNlcjpzZWNyZXQ="}) == "secret"
    assert credential_from_headers({"authorization": "Basic dXNlcg=="}) is None  # no password
    assert credential_from_headers({}) is None


def test_published_generic_schema_matches_the_model() -> None:
    published = json.loads((ROOT / "docs" / "generic-alert.schema.json").read_text())
    assert published == json_schema(), "regenerate docs/generic-alert.schema.json (see docs/ingest.md)"


def test_torch_is_the_cpu_build() -> None:
    import torch

    assert torch.__version__.startswith("2.13.0")
    assert torch.version.cuda is None


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        env = field.validation_alias if isinstance(field.validation_alias, str) else f"INCIBOT_{name.upper()}"
        assert f"| `{env}` |" in readme, env


@pytest.mark.parametrize(
    ("category", "source", "confidence", "shown"),
    [
        ("database", "model", 0.931, "database (model classify-1, confidence 0.93)"),
        (None, "model", 0.42, "unclassified (model classify-1, confidence 0.42)"),
        ("network", "person", None, "network (set by a person)"),
        (None, None, None, "unclassified"),
    ],
)
def test_incidents_show_says_the_category_and_who_set_it(
    category: str | None, source: str | None, confidence: float | None, shown: str
) -> None:
    data = {
        "status": "triggered",
        "severity": "critical",
        "category": category,
        "category_source": source,
        "category_confidence": confidence,
        "category_model": "classify-1" if source == "model" else None,
    }
    assert ("Category", shown) in facts(data)
    assert [label for label, _ in facts(data)][:3] == ["Status", "Severity", "Category"]
