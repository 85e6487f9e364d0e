"""``incibot demo`` plays its whole story through the real paths: checked afterwards through the stand-in's stored
messages and the command line, as a visitor and an operator would see it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.main import main
from bot.demo import story
from bot.demo.run import DemoOptions, NotFresh, prepare_state_dir, run_demo
from bot.settings import Settings
from bot.standin.server import StandinServer
from knowledge.embeddings import Embedder
from tests.support import free_port

FAQ = """---
title: Ordering office supplies
audience: public
---
# Ordering office supplies

## How to order
Pick the items in the supplies catalogue on the intranet; the facilities team delivers them on Thursdays.
"""


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _thread_texts(message: dict[str, Any]) -> list[str]:
    return [str(reply.get("text") or "") for reply in message.get("replies") or []]


def test_the_demo_plays_the_whole_story(
    settings: Settings,
    shared_embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    faq = tmp_path / "faq"  # one small article: the sample FAQ would take the agent seconds to index
    faq.mkdir()
    (faq / "supplies.md").write_text(FAQ)
    state_dir = tmp_path / "demo"
    lines: list[str] = []
    options = DemoOptions(port=free_port(), state_dir=state_dir, speed=600, stay=False)

    assert (
        run_demo(settings.model_copy(update={"faq_dir": faq}), options, embedder=shared_embedder, say=lines.append) == 0
    )

    assert lines[1].startswith("local workspace: http://127.0.0.1:"), lines  # the page's URL before the story
    assert lines[-1].startswith("the story is played: incident #4"), lines
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(state_dir))
    listed = _cli_json(capsys, "incidents", "list")
    assert [(i["id"], i["status"]) for i in listed] == [
        (5, "triggered"),  # the certificate warning, on its own
        (4, "triggered"),  # the cascade
        (3, "resolved"),
        (2, "resolved"),
        (1, "resolved"),
    ]
    cascade = _cli_json(capsys, "incidents", "show", "4")
    assert cascade["alert_count"] == len(story.OUTAGE)  # a dozen alerts, one incident
    assert all(alert["reason"].startswith("joined #4") for alert in cascade["alerts"][1:])
    assert cascade["category"] is not None
    top = cascade["root_cause"]["candidates"][0]
    assert top["name"] == "orders-db"
    assert any(e["source"] == "change" and "pg-config-41" in e["text"] for e in top["evidence"])
    audit = _cli_json(capsys, "audit", "--incident", "4")
    assert [(e["event"], e["action"], e["actor"]) for e in audit] == [("requested", "rollback-release", story.ALICE)]

    with StandinServer(state_dir / "standin.sqlite", workspace=story.workspace()) as standin:
        history = standin.messages(story.HISTORY_CHANNEL)
        assert len(history) == len(story.HISTORY)
        post = next(m for m in standin.messages("incidents") if "#4" in str(m.get("text")))
        blocks = json.dumps(post["blocks"])
        assert "orders-db" in blocks and "Similar past incidents" in blocks and "Runbooks" in blocks
        request = next(r for r in post["replies"] if "rollback-release" in str(r.get("blocks") or r.get("text")))
        assert {"Approve", "Deny"} <= {label.split(":")[0] for label in _button_labels(request)}, request
        dm_channel = httpx.post(f"{standin.url}/_standin/ims", json={"user": story.DANA}).json()["channel"]
        dm = standin.messages(dm_channel)
        question = next(m for m in dm if m.get("user") == story.DANA)
        assert any("#4" in text for text in _thread_texts(question)), question


def _button_labels(message: dict[str, Any]) -> list[str]:
    labels = []
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("type") == "button":
                labels.append(str(element["text"]["text"]))
    return labels


def test_the_demo_refuses_a_state_dir_in_use(tmp_path: Path) -> None:
    (tmp_path / "incibot.db").write_bytes(b"")
    with pytest.raises(NotFresh):
        prepare_state_dir(tmp_path)
    assert not (tmp_path / "topology.json").exists()


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--port", "0"], "--port must be 1-65535"),
        (["--speed", "0"], "--speed must be positive"),
        (["--host", "192.0.2.10"], "loopback only"),
    ],
)
def test_bad_demo_options_exit_2_with_the_reason_and_start_nothing(
    arguments: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "demo"
    assert main(["demo", "--state-dir", str(state_dir), *arguments]) == 2
    assert says in capsys.readouterr().err
    assert not state_dir.exists()
