"""``incibot replay``: a storm-format stream reaches a real ingest endpoint as Alertmanager webhooks."""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.cli import replay
from bot.cli.main import main
from bot.db.database import Database
from bot.ingest.models import Alert, Delivery
from bot.runtime import Runtime
from tests.conftest import TOKEN
from tests.support import serve_in_thread

pytestmark = pytest.mark.db

RECORDED = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"


def line(
    minute: int, name: str, pod: str, *, cluster: str = "c1", resolved: bool = False, started: int = -1
) -> dict[str, Any]:
    """A stream line ``minute`` minutes into the recording; the alert started ``started`` minutes in."""
    at = RECORDED + timedelta(minutes=minute)
    labels = {"alertname": name, "cluster": cluster, "namespace": "shop", "pod": pod, "severity": "warning"}
    alert = {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} on {pod}"},
        "startsAt": (RECORDED + timedelta(minutes=started)).isoformat().replace("+00:00", "Z"),
        "endsAt": at.isoformat().replace("+00:00", "Z") if resolved else ZERO,
        "generatorURL": "http://prometheus.example.com/graph",
        "fingerprint": f"{name}-{cluster}-{pod}",
    }
    return {"at": at.isoformat(), "alert": alert, "truth": {"incident": "SECRET-TRUTH", "root_cause": True}}


STREAM = [
    line(0, "PodCrash", "api-1"),
    line(1, "PodCrash", "api-2", started=0),
    line(2, "HighLatency", "api-1", started=1),
    line(3, "PodCrash", "api-1"),  # a re-send: the same startsAt must arrive again
    line(4, "PodCrash", "api-3", cluster="c2", started=3),
    line(5, "PodCrash", "api-2", resolved=True, started=0),
]


def write_stream(path: Path, lines: list[dict[str, Any]]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        handle.writelines(json.dumps(item) + "\n" for item in lines)
    return path


@pytest.fixture
def bot_url(runtime: Runtime) -> Iterator[str]:
    with serve_in_thread(runtime.asgi_app(frozenset({"web"}))) as url:
        yield url


@pytest.fixture(autouse=True)
def _own_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INCIBOT_STATE_DIR", str(tmp_path / "cli-state"))  # no token file from elsewhere


def stored_bodies(database: Database) -> list[dict[str, Any]]:
    with database.read() as session:
        return [orjson.loads(body) for body in session.scalars(select(Delivery.body).order_by(Delivery.id))]


def test_stream_arrives_grouped_shifted_to_now_and_without_truth(
    bot_url: str, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = write_stream(tmp_path / "storm.jsonl.gz", STREAM)
    before = datetime.now(UTC)
    assert main(["replay", str(stream), "--url", bot_url, "--token", TOKEN, "--rate", "1000"]) == 0
    after = datetime.now(UTC)
    assert "sent 6 lines in 5 webhooks; 5 accepted, 0 HTTP errors" in capsys.readouterr().out

    bodies = stored_bodies(database)
    assert all("SECRET-TRUTH" not in json.dumps(body) and "truth" not in body for body in bodies)
    # Flush 1 at 0 s: line 0. Flush 2 at 50 ms: lines 1-5, one webhook per group, a fingerprint once per webhook.
    by_group: dict[str, list[list[str]]] = {}
    for body in bodies:
        by_group.setdefault(body["groupKey"], []).append([a["labels"]["pod"] for a in body["alerts"]])
    crash = '{}:{alertname="PodCrash", cluster="c1", namespace="shop"}'
    assert by_group == {
        crash: [["api-1"], ["api-2", "api-1"], ["api-2"]],
        '{}:{alertname="HighLatency", cluster="c1", namespace="shop"}': [["api-1"]],
        '{}:{alertname="PodCrash", cluster="c2", namespace="shop"}': [["api-3"]],
    }
    pair = next(body for body in bodies if len(body["alerts"]) == 2)
    assert pair["version"] == "4" and pair["status"] == "firing" and pair["truncatedAlerts"] == 0
    assert pair["groupLabels"] == {"alertname": "PodCrash", "cluster": "c1", "namespace": "shop"}
    assert pair["commonLabels"] == {
        "alertname": "PodCrash",
        "cluster": "c1",
        "namespace": "shop",
        "severity": "warning",
    }
    assert pair["commonAnnotations"] == {} and pair["receiver"] and pair["externalURL"]
    assert [body["status"] for body in bodies if body["groupKey"] == crash][-1] == "resolved"

    # Times moved onto the replay's clock: the re-send keeps its startsAt, the resolve ends after it started.
    with database.read() as session:
        rows = list(session.scalars(select(Alert)))
    alerts = {(a.alertname, a.labels["pod"], a.labels["cluster"]): a for a in rows}
    assert len(rows) == len(alerts) == 4  # PodCrash api-1 was sent twice with one startsAt: one occurrence
    for alert in alerts.values():
        assert alert.starts_at is not None
        assert before - timedelta(seconds=1) <= alert.starts_at.replace(tzinfo=UTC) <= after
    resolved = alerts[("PodCrash", "api-2", "c1")]
    assert resolved.status == "resolved" and resolved.ends_at is not None and resolved.starts_at is not None
    assert resolved.ends_at > resolved.starts_at


def test_speed_divides_the_recorded_gaps(bot_url: str, database: Database, tmp_path: Path) -> None:
    stream = write_stream(tmp_path / "storm.jsonl", [line(0, "A", "p0", started=0), line(1, "B", "p1", started=1)])
    assert main(["replay", str(stream), "--url", bot_url, "--token", TOKEN, "--speed", "600"]) == 0
    with database.read() as session:
        starts = {a.alertname: a.starts_at for a in session.scalars(select(Alert))}
    assert starts["B"] is not None and starts["A"] is not None
    assert starts["B"] - starts["A"] == timedelta(milliseconds=100)  # 60 s recorded / 600


def test_rate_paces_lines_into_flushes() -> None:
    offsets = replay.due_offsets([replay.StreamLine(RECORDED, {})] * 5, rate=40)
    assert offsets == [0.0, 0.025, 0.05, 0.075, 0.1]
    # A flush waits for the next due line and comes at least 50 ms after the last one.
    assert list(replay.flushes(offsets, 0.05)) == [(0.0, 0, 1), (0.05, 1, 3), (0.1, 3, 5)]
    assert list(replay.flushes([0.0, 1.0, 1.01], 0.05)) == [(0.0, 0, 1), (1.0, 1, 2), (1.05, 2, 3)]


def test_bad_token_exits_1_showing_the_refusal(
    bot_url: str, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = write_stream(tmp_path / "storm.jsonl", STREAM[:2])
    assert main(["replay", str(stream), "--url", bot_url, "--token", "wrong", "--rate", "1000"]) == 1
    out = capsys.readouterr().out
    assert "0 accepted, 2 HTTP errors" in out
    assert '2 webhooks refused: 401 {"error":"unauthorized","message":"wrong credential"}' in out
    assert stored_bodies(database) == []


def test_503_is_sent_again_after_retry_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = [503, 202]

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(status_code=answers.pop(0), headers={"Retry-After": "0"})

    app = Starlette(routes=[Route("/alerts/alertmanager", endpoint, methods=["POST"])])
    stream = write_stream(tmp_path / "storm.jsonl", STREAM[:1])
    with serve_in_thread(app) as url:
        assert main(["replay", str(stream), "--url", url, "--token", TOKEN]) == 0
    assert answers == []
    assert "1 accepted, 0 HTTP errors, 1 retried after 503/429" in capsys.readouterr().out


class _ClosesAfterEachAnswer(socketserver.StreamRequestHandler):
    """Answers one request per connection and closes it without saying so (no ``Connection: close``), as a
    server does when a keep-alive connection has been idle past its timeout."""

    bodies: list[bytes] = []

    def handle(self) -> None:
        length = 0
        self.rfile.readline()
        while (header := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            length = int(value) if name.strip().lower() == b"content-length" else length
        self.bodies.append(self.rfile.read(length))
        self.wfile.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")


def test_a_keep_alive_connection_the_server_closed_is_opened_again_and_nothing_is_sent_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ClosesAfterEachAnswer.bodies = []
    stream = write_stream(tmp_path / "storm.jsonl", [line(minute, "PodCrash", "api-1") for minute in range(4)])
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ClosesAfterEachAnswer) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        # One connection, so each webhook after the first finds it closed.
        code = main(["replay", str(stream), "--url", url, "--token", TOKEN, "--rate", "40", "--connections", "1"])
        server.shutdown()
    assert code == 0
    assert "sent 4 lines in 4 webhooks; 4 accepted, 0 HTTP errors" in capsys.readouterr().out
    assert len(_ClosesAfterEachAnswer.bodies) == 4


def test_a_bot_that_cannot_be_reached_exits_1_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # a port nobody listens on
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        stream = write_stream(tmp_path / "storm.jsonl", STREAM[:2])
        assert main(["replay", str(stream), "--url", url, "--token", TOKEN, "--rate", "1000"]) == 1
    out = capsys.readouterr().out
    assert "0 accepted, 2 HTTP errors" in out
    assert "2 webhooks not answered: ConnectionRefusedError" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "--token", TOKEN], "cannot read"),
        (["garbage.jsonl", "--token", TOKEN], "cannot read"),
        (["empty.jsonl", "--token", TOKEN], "holds no stream lines"),
        (["storm.jsonl", "--token", TOKEN, "--url", "ftp://example.com"], "bad --url"),
        (["storm.jsonl"], "no ingest token"),
    ],
)
def test_bad_usage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    write_stream(tmp_path / "storm.jsonl", STREAM[:1])
    (tmp_path / "garbage.jsonl").write_text('{"at": "yesterday"}\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    file, *rest = args
    url = [] if "--url" in rest else ["--url", "http://127.0.0.1:9"]
    assert main(["replay", str(tmp_path / file), *url, *rest]) == 2
    assert message in capsys.readouterr().err
