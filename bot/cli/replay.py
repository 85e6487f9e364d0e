"""``incibot replay``: send a recorded alert stream to a running bot as Alertmanager would.

The stream is in the storm format: JSON lines (plain or gzip), each ``{"at": ISO time, "alert": Alertmanager v4
alert, "truth": ...}``; only ``at`` and ``alert`` are read for sending (``truth`` never leaves this process).
The first line is sent now and the recorded gaps are divided by ``--speed``, or lines go out at ``--rate`` per
second whatever the gaps; every timestamp (``startsAt``, ``endsAt`` when set) is moved onto the replay's clock
by one function of the recorded time, so re-sends of an alert keep one ``startsAt`` and none lies in the future.

Delivery is Alertmanager's: alerts are grouped by :data:`GROUP_BY`, the lines of one group that are due at the
same flush go in one v4 webhook (a fingerprint at most once each), and a group's webhooks are sent one after
the other (so the bot stores them in order) on a few concurrent connections. A 503 or 429 is sent again after
its ``Retry-After``. Exit status: 0 every webhook was accepted (202), 1 some were not, 2 bad usage.

It stays whole: reading, re-timing, grouping and sending are one pipeline over one clock.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from bot.ingest import token_file
from bot.settings import Settings
from knowledge.correlation.stream import DEFAULT_GROUP_BY
from knowledge.evaluation import open_text

GROUP_BY = DEFAULT_GROUP_BY  # the grouping the correlation library assumes too
PATH = "/alerts/alertmanager"
RECEIVER = "incibot"
EXTERNAL_URL = "http://alertmanager.replay.invalid"
ZERO_TIME = "0001-01-01T00:00:00Z"
FLUSH_SECONDS = 0.05  # how often due lines are gathered into webhooks when they come faster than that
CONNECTIONS = 8
RETRIES = 10  # sends of one webhook answered 503/429 before it counts as refused
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 60.0
PROGRESS_SECONDS = 60.0
SHOWN_REFUSALS = 5


@dataclass(frozen=True, slots=True)
class StreamLine:
    """One line of a storm-format stream; ``truth`` is for scoring and must never be sent."""

    at: datetime
    alert: dict[str, Any]
    truth: dict[str, Any] | None = None


def read_stream(path: str | Path) -> Iterator[StreamLine]:
    """The lines of a storm-format stream, in file order; a line that is not one raises ``ValueError``
    naming it (an unreadable file raises ``OSError``)."""
    for number, text in enumerate(open_text(path), 1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
            at = datetime.fromisoformat(item["at"])
            alert, truth = item["alert"], item.get("truth")
            if at.tzinfo is None or not isinstance(alert, dict) or not isinstance(truth, dict | None):
                raise TypeError("`at` needs a timezone, `alert` and `truth` must be objects")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number}: not a stream line: {exc}") from exc
        yield StreamLine(at, alert, truth)


# --- when each line is due, and its timestamps on the replay's clock ---------------------------------------------


def due_offsets(lines: Sequence[StreamLine], *, speed: float = 1.0, rate: float | None = None) -> list[float]:
    """Seconds from the start at which each line is due: the recorded gaps divided by ``speed``, or ``i / rate``."""
    if rate is not None:
        return [index / rate for index in range(len(lines))]
    offsets: list[float] = []
    for line in lines:
        offset = (line.at - lines[0].at).total_seconds() / speed
        offsets.append(max(offset, offsets[-1]) if offsets else 0.0)  # an out-of-order line is sent at once
    return offsets


class TimeMap:
    """Moves recorded times onto the replay's clock: the recorded ``at`` of line i goes to ``start + offsets[i]``,
    times between two lines in proportion, times outside the stream at its average speed. It is a function of
    the recorded time alone, so one ``startsAt`` maps to one value however often it is sent."""

    def __init__(self, lines: Sequence[StreamLine], offsets: Sequence[float], start: datetime) -> None:
        self._start = start
        self._recorded: list[float] = []
        self._replayed: list[float] = []
        first = lines[0].at.timestamp() if lines else 0.0
        for line, offset in zip(lines, offsets, strict=True):
            recorded = line.at.timestamp() - first
            if not self._recorded or recorded > self._recorded[-1]:
                self._recorded.append(recorded)
                self._replayed.append(offset)
        self._first = first
        span_recorded, span_replayed = self._recorded[-1] if lines else 0.0, self._replayed[-1] if lines else 0.0
        self.speed = span_recorded / span_replayed if span_recorded > 0 and span_replayed > 0 else 1.0

    def offset(self, recorded: datetime) -> float:
        """Seconds after the start at which ``recorded`` lies on the replay's clock."""
        t = recorded.timestamp() - self._first
        if not self._recorded or t <= 0:
            return t / self.speed
        if t >= self._recorded[-1]:
            return self._replayed[-1] + (t - self._recorded[-1]) / self.speed
        right = bisect.bisect_right(self._recorded, t)
        r0, r1 = self._recorded[right - 1], self._recorded[right]
        p0, p1 = self._replayed[right - 1], self._replayed[right]
        return p0 + (t - r0) * (p1 - p0) / (r1 - r0)

    def __call__(self, value: str) -> str:
        """An RFC 3339 time from the stream, on the replay's clock (Go's zero time, or no time, stays as it is)."""
        try:
            recorded = datetime.fromisoformat(value)
        except ValueError:
            return value  # sent as it is: the bot's answer says what is wrong with it
        if recorded.year == 1 or recorded.tzinfo is None:
            return value
        moved = self._start + timedelta(seconds=self.offset(recorded))
        return moved.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shifted(alert: dict[str, Any], clock: TimeMap) -> dict[str, Any]:
    """A copy of ``alert`` with ``startsAt`` and ``endsAt`` on the replay's clock."""
    moved = dict(alert)
    for key in ("startsAt", "endsAt"):
        if isinstance(moved.get(key), str):
            moved[key] = clock(moved[key])
    return moved


# --- Alertmanager's webhooks -------------------------------------------------------------------------------------

GroupId = tuple[str, ...]


def group_of(alert: dict[str, Any]) -> GroupId:
    labels = alert.get("labels") or {}
    return tuple(str(labels.get(name, "")) for name in GROUP_BY)


def webhook(alerts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An Alertmanager v4 webhook body for alerts of one group (as the root route with :data:`GROUP_BY` sends)."""
    labels = alerts[0].get("labels") or {}
    group_labels = {name: str(labels[name]) for name in GROUP_BY if name in labels}
    group_key = "{}:{" + ", ".join(f"{name}={json.dumps(value)}" for name, value in group_labels.items()) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if any(alert.get("status") == "firing" for alert in alerts) else "resolved",
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": _common(alert.get("labels") or {} for alert in alerts),
        "commonAnnotations": _common(alert.get("annotations") or {} for alert in alerts),
        "externalURL": EXTERNAL_URL,
        "alerts": list(alerts),
    }


def _common(mappings: Iterator[dict[str, Any]]) -> dict[str, Any]:
    common: dict[str, Any] | None = None
    for mapping in mappings:
        common = dict(mapping) if common is None else {k: v for k, v in common.items() if mapping.get(k) == v}
    return common or {}


def batches(alerts: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The webhooks for alerts due at one flush: one per group in order of first appearance; a fingerprint
    that comes again in a group (a re-send, then its resolve) starts that group's next webhook."""
    open_batches: dict[GroupId, list[dict[str, Any]]] = {}
    fingerprints: dict[GroupId, set[str]] = {}
    result: list[list[dict[str, Any]]] = []
    for alert in alerts:
        group = group_of(alert)
        identity = str(alert.get("fingerprint") or sorted((alert.get("labels") or {}).items()))
        if group not in open_batches or identity in fingerprints[group]:
            open_batches[group], fingerprints[group] = [], set()
            result.append(open_batches[group])
        open_batches[group].append(alert)
        fingerprints[group].add(identity)
    return result


def flushes(offsets: Sequence[float], flush_seconds: float = FLUSH_SECONDS) -> Iterator[tuple[float, int, int]]:
    """``(at, first, end)``: lines ``first`` to ``end - 1`` are sent together ``at`` seconds after the start.
    A flush waits for the next due line, and comes at least ``flush_seconds`` after the one before."""
    first, at = 0, -flush_seconds
    while first < len(offsets):
        at = max(offsets[first], at + flush_seconds)
        end = bisect.bisect_right(offsets, at, lo=first)
        yield at, first, end
        first = end


def webhooks(lines: Sequence[StreamLine], clock: TimeMap) -> list[tuple[GroupId, bytes]]:
    """The webhooks (group, JSON body) that carry ``lines``, due at one flush, with their times moved."""
    alerts = [shifted(line.alert, clock) for line in lines]
    return [
        (group_of(batch[0]), json.dumps(webhook(batch), separators=(",", ":")).encode()) for batch in batches(alerts)
    ]


# --- sending -----------------------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    lines: int = 0
    webhooks: int = 0
    accepted: int = 0  # webhooks answered 202
    retried: int = 0  # 503/429 answers sent again
    refused: Counter[tuple[int, str]] = field(default_factory=Counter)  # (status, body) of webhooks not accepted
    transport_errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # from the first send to the last answer

    @property
    def errors(self) -> int:
        return sum(self.refused.values()) + sum(self.transport_errors.values())

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"sent {self.lines:,} lines in {self.webhooks:,} webhooks; {self.accepted:,} accepted, "
            f"{self.errors:,} HTTP errors, {self.retried:,} retried after 503/429; "
            f"{self.seconds:.1f} s, {self.rate:,.1f} alerts/s"
        )


class _Sender:
    """One thread and connection per slot; a group always goes to the same slot, so its webhooks are sent one
    after the other, in order. A 503 or 429 is sent again after its Retry-After (holding the slot, as
    Alertmanager holds the group). (Threads with the standard library's keep-alive ``http.client``: a replay at
    thousands of alerts/s shares the cores with the bot it loads, and httpx's blocking client costs about two and
    a half times its CPU per request, its asyncio client three times more again.)"""

    def __init__(self, url: str, token: str, connections: int, report: ReplayReport) -> None:
        self._url = urlsplit(url)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._report = report
        self._lock = threading.Lock()
        self._queues: list[queue.SimpleQueue[bytes | None]] = [queue.SimpleQueue() for _ in range(connections)]
        self._threads = [threading.Thread(target=self._run, args=(q,), daemon=True) for q in self._queues]
        for thread in self._threads:
            thread.start()

    def send(self, group: GroupId, body: bytes) -> None:
        self._queues[hash(group) % len(self._queues)].put(body)

    def close(self) -> None:
        """Wait until every webhook queued so far has its answer."""
        for slot in self._queues:
            slot.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self, slot: queue.SimpleQueue[bytes | None]) -> None:
        connection = _Connection(self._url, self._headers)
        try:
            while (body := slot.get()) is not None:
                self._post(connection, body)
        finally:
            connection.close()

    def _post(self, connection: _Connection, body: bytes) -> None:
        report = self._report
        for attempt in range(RETRIES + 1):
            try:
                status, headers, text = connection.post(body)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    report.transport_errors[f"{type(exc).__name__}: {exc}"] += 1
                return
            if status not in (429, 503) or attempt == RETRIES:
                break
            with self._lock:
                report.retried += 1
            time.sleep(_retry_after(headers.get("retry-after")))
        with self._lock:
            if status == 202:
                report.accepted += 1
            else:
                report.refused[(status, text.strip()[:300])] += 1


class _Connection:
    """A keep-alive HTTP/1.1 connection to the bot's webhook URL, opened again when the bot closed it."""

    def __init__(self, url: SplitResult, headers: dict[str, str]) -> None:
        https = url.scheme == "https"
        kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
        self._connection = kind(url.hostname or "", url.port or (443 if https else 80), timeout=30.0)
        self._target = url.path + (f"?{url.query}" if url.query else "")
        self._headers = headers
        self._answered = 0  # answers read on the open connection

    def post(self, body: bytes) -> tuple[int, http.client.HTTPMessage, str]:
        """Status, headers and text of the answer to one POST of ``body``. A connection that was idle may have
        been closed by the server (as uvicorn does after 5 s) before it read the request: that is sent once more
        on a new connection, as HTTP clients do; any other failure raises."""
        reused = self._answered > 0
        try:
            return self._exchange(body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise
            return self._exchange(body)

    def close(self) -> None:
        self._connection.close()
        self._answered = 0

    def _exchange(self, body: bytes) -> tuple[int, http.client.HTTPMessage, str]:
        try:
            self._connection.request("POST", self._target, body=body, headers=self._headers)
            response = self._connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except Exception:
            self.close()
            raise
        self._answered = 0 if response.will_close else self._answered + 1
        return response.status, response.headers, text


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or ""), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return DEFAULT_RETRY_AFTER


def replay(
    lines: Sequence[StreamLine],
    url: str,
    token: str,
    *,
    speed: float = 1.0,
    rate: float | None = None,
    connections: int = CONNECTIONS,
    flush_seconds: float = FLUSH_SECONDS,
    progress_seconds: float | None = None,
) -> ReplayReport:
    """Send ``lines`` to the bot at ``url`` (its base URL) as Alertmanager webhooks; see the module docstring.
    The schedule does not wait for answers: a slow bot makes webhooks queue, and the achieved rate drop."""
    report = ReplayReport()
    offsets = due_offsets(lines, speed=speed, rate=rate)
    sender = _Sender(url.rstrip("/") + PATH, token, connections, report)
    started = time.monotonic()
    clock = TimeMap(lines, offsets, datetime.now(UTC))
    next_progress = progress_seconds
    try:
        for at, first, end in flushes(offsets, flush_seconds):
            time.sleep(max(at - (time.monotonic() - started), 0.0))
            for group, body in webhooks(lines[first:end], clock):
                sender.send(group, body)
                report.webhooks += 1
            report.lines = end
            if next_progress is not None and at >= next_progress:
                print(f"replay: {end:,}/{len(lines):,} lines sent, {report.errors:,} errors", file=sys.stderr)
                next_progress += progress_seconds or 0.0
    finally:
        sender.close()
    report.seconds = time.monotonic() - started
    return report


# --- the command -------------------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    parser = commands.add_parser("replay", help="send a recorded alert stream to a running bot as Alertmanager would")
    parser.add_argument("file", type=Path, help="storm-format JSON lines (.jsonl or .jsonl.gz)")
    parser.add_argument("--url", required=True, help="the bot's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", default=None, help="ingest token (default: configured or the token file)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="divide the recorded gaps by this (default 1.0)")
    pace.add_argument("--rate", type=float, default=None, help="send N alerts per second, ignoring the gaps")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=f"concurrent connections ({CONNECTIONS})")
    parser.set_defaults(handler=run_replay)


def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or token_file.alertmanager_token(settings)
    try:
        token = _checked_usage(args, token)
        lines = _read_all(args.file)
    except ValueError as exc:
        print(f"incibot: {exc}", file=sys.stderr)
        return 2
    report = replay(
        lines,
        args.url,
        token,
        speed=args.speed,
        rate=args.rate,
        connections=args.connections,
        progress_seconds=PROGRESS_SECONDS,
    )
    print(report.summary())
    for (status, body), count in report.refused.most_common(SHOWN_REFUSALS):
        print(f"  {count:,} webhooks refused: {status} {body}")
    for reason, count in report.transport_errors.most_common(SHOWN_REFUSALS):
        print(f"  {count:,} webhooks not answered: {reason}")
    return 0 if report.errors == 0 else 1


def _checked_usage(args: argparse.Namespace, token: str | None) -> str:
    """The token, or ``ValueError`` saying what is wrong with the command line."""
    try:
        url = urlsplit(args.url)
        url.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise ValueError(f"bad --url {args.url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"bad --url {args.url!r}: need http(s)://host[:port]")
    if args.speed <= 0 or (args.rate is not None and args.rate <= 0) or args.connections < 1:
        raise ValueError("--speed and --rate must be positive, --connections at least 1")
    if token is None:
        raise ValueError("no ingest token: pass --token, set INCIBOT_INGEST_TOKENS, or run `make run` once")
    return token


def _read_all(path: Path) -> list[StreamLine]:
    try:
        lines = list(read_stream(path))
    except (OSError, EOFError, ValueError) as exc:  # missing, unreadable, truncated gzip, not the format
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not lines:
        raise ValueError(f"{path} holds no stream lines")
    return lines
