"""Generated answers against a scripted OpenAI-compatible server on loopback: a good answer is used; a timeout, a
citation of a passage that was not given, an answer without citations and an HTTP 500 all give None (the caller
then shows the extractive answer). The prompt numbers the passages it was given, and the key is never logged.
Through the stand-in, a DM question gets the generated answer, or the quoted passage when the model is late or
cites a passage it was not given."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from bot.agent.llm import LlmConfig, LlmWriter, cited
from bot.settings import Settings
from knowledge.embeddings import Embedder
from tests.agent_support import agent_settings, ask, block_text
from tests.slack_support import running_bot
from tests.support import FakeClock, reply_json, serve_handler


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


PASSAGES = [
    Passage("Reset your password", "Open the account page and choose Forgot password; a link arrives by email."),
    Passage("VPN on a new laptop", "Install the client from the software centre, then sign in with SSO."),
]
KEY = "sk-test-key-never-logged-93f1"


@dataclass
class Script:
    """What the server answers next: (status, delay in seconds, the assistant's text or a raw body)."""

    url: str = ""
    replies: list[tuple[int, float, str]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Script]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            script.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, delay, text = script.replies.pop(0)
            time.sleep(delay)
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            payload = json.dumps(answer).encode() if status == 200 else text.encode()
            reply_json(self, status, payload)

        def log_message(self, *_args: Any) -> None:
            pass

    with serve_handler(Handler) as url:
        script.url = url
        yield script


def _writer(script: Script, timeout: float = 2.0) -> LlmWriter:
    return LlmWriter(LlmConfig(url=script.url, timeout=timeout, api_key=KEY, model="local"))


def test_a_cited_answer_is_used_and_the_prompt_numbers_the_passages(server: Script) -> None:
    good = "Use Forgot password on the account page [1]; the link comes by email [1]."
    server.replies.append((200, 0.0, good))
    writer = _writer(server)
    assert writer(PASSAGES, "I forgot my password, what now?") == good
    [(headers, body)] = server.requests
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "local" and body["temperature"] == 0
    user = body["messages"][-1]["content"]
    assert "[1] Reset your password\n" in user and "[2] VPN on a new laptop\n" in user
    assert "Question: I forgot my password, what now?" in user


@pytest.mark.parametrize(
    ("status", "delay", "text"),
    [
        (200, 1.5, "Use Forgot password [1]."),  # later than the timeout
        (200, 0.0, "Reinstall the VPN client [7]."),  # cites a passage it was not given
        (200, 0.0, "Use Forgot password on the account page."),  # cites nothing
        (200, 0.0, "Use Forgot password [1], then call IT [citation needed]."),  # a made-up marker
        (500, 0.0, '{"error": "model crashed"}'),
        (200, 0.0, ""),  # empty
    ],
    ids=["timeout", "cites-7", "no-citation", "other-marker", "http-500", "empty"],
)
def test_an_answer_that_is_late_or_strays_from_the_passages_is_refused(
    server: Script, caplog: pytest.LogCaptureFixture, status: int, delay: float, text: str
) -> None:
    server.replies.append((status, delay, text))
    writer = _writer(server, timeout=0.5)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        assert writer(PASSAGES, "I forgot my password") is None
    assert time.monotonic() - started < 1.4  # the timeout bounds the call
    assert KEY not in caplog.text and "forgot my password" not in caplog.text


def test_an_unreachable_endpoint_or_no_passages_gives_none(server: Script) -> None:
    closed = LlmWriter(LlmConfig(url="http://127.0.0.1:9", timeout=0.5))
    assert closed(PASSAGES, "anything") is None
    assert _writer(server)([], "anything") is None
    assert server.requests == []  # nothing to answer from: the endpoint is not asked


def test_citation_check() -> None:
    assert cited("A [2] and B [1, 2] and C [1,2].", 2) == [2, 1]
    assert cited("Footnote style [^1].", 1) == [1]
    assert cited("Out of range [3].", 2) is None
    assert cited("Zero [0].", 2) is None
    assert cited("Nothing cited.", 2) is None
    assert cited("Cited [1] but also [source].", 2) is None
    assert cited("Cited [1] and [?].", 2) is None


@pytest.mark.parametrize(
    ("reply", "generated"),
    [
        ((200, 0.0, "Use Forgot password on the self-service portal [1]."), True),
        ((200, 1.5, "Use Forgot password on the self-service portal [1]."), False),  # too late
        ((200, 0.0, "Call the help desk on extension 7 [7]."), False),  # cites a passage it was not given
    ],
    ids=["used", "timeout", "cites-7"],
)
def test_the_agent_answers_with_the_generated_text_only_when_it_is_kept(
    settings: Settings,
    clock: FakeClock,
    tmp_path: Path,
    shared_embedder: Embedder,
    server: Script,
    reply: tuple[int, float, str],
    generated: bool,
) -> None:
    server.replies.append(reply)
    configured = agent_settings(settings, tmp_path, llm_url=server.url, llm_timeout=0.5)
    with running_bot(configured, shared_embedder, clock=clock) as bot:
        answer = block_text(ask(bot, "I forgot my password, how do I get a new one?"))
    assert len(server.requests) == 1
    assert "[1] Resetting your password" in server.requests[0][1]["messages"][-1]["content"]
    assert ("Use Forgot password on the self-service portal [1]." in answer) is generated
    assert "extension 7" not in answer
    assert ('choose "Forgot password"' in answer) is not generated  # the extractive answer quotes the article
