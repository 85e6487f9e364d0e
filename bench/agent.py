"""The virtual agent's latency: questions in a DM to a running ``incibot serve`` and its built-in Slack stand-in.

Each run starts a fresh service (a new state dir, SQLite, the defaults: the sample FAQ and runbooks, the embedding
model; ``INCIBOT_AGENT_RATE`` raised so that the per-user limit never answers instead of the agent), waits for
``/healthz`` and ``runtime.json``, asks one unmeasured warm-up question, then ``--questions`` questions of the dev set
(``knowledge/samples/questions.jsonl``, in turn, by Alice, Bob and Carol) one at a time, one every ``--interval``
seconds (1.25: under the 50 a minute that ``chat.update``, the edit of every placeholder, allows), each as a person
writes it: the stand-in stores the message and sends the signed ``message.im`` event (``direct_message``). For each
question it measures, from just before the message is written, the time until the bot's first reply is in the thread
(the "looking…" placeholder, or the answer itself) and until the reply holds the answer (the placeholder edited),
polling the stand-in every 5 ms. ``--runs`` runs (3); the p50/p95 of each run and their medians are printed and
written to ``bench/results/agent.json``, with each run's decisions (answer or hand-over, per question) and a digest
of the code it ran (the Python files under ``bot/`` and ``knowledge/``). The agent decides the same way every run:
runs that disagree fail the benchmark; each run starts ``incibot serve`` from the working tree afresh, so edits made
meanwhile change what later runs measure, and the digests say so.

Run (about 7 minutes: 3 runs of 100 questions at 1.25 s, and each service's start)::

    .venv/bin/python bench/agent.py

Exit status: 0 every question was answered, every first reply came within 3 s and the runs agree; 1 not; 2 the
benchmark could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ingest  # bench/ingest.py (this script's directory is on sys.path): the service helpers
import slack_burst  # bench/slack_burst.py: reading the stand-in's runtime.json

from bot.agent.answers import LOOKING
from bot.standin.driver import ACK_DEADLINE, SlackDriver

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "agent.json"
DEFAULT_QUESTIONS = ROOT / "knowledge" / "samples" / "questions.jsonl"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
ANSWER_TIMEOUT = 30.0
POLL = 0.005
FIRST_REPLY_LIMIT = 3.0  # the bound on the first reply (Slack's own for an ack)
AGENT_SETTINGS = {"INCIBOT_AGENT_RATE": "100000/min"}  # the bench measures latency, not the rate limit


@dataclass(frozen=True)
class Config:
    runs: int
    questions: int
    questions_file: Path
    incibot: Path
    output: Path
    keep: bool
    interval: float


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs, each against a fresh service (3)")
    parser.add_argument("--questions", type=int, default=100, help="measured questions per run (100)")
    parser.add_argument("--questions-file", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--incibot", type=Path, default=Path(sys.executable).parent / "incibot")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep", action="store_true", help="keep each run's state dir and server log")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.25,
        help="seconds between questions' starts (1.25: 48/min, under chat.update's 50/min)",
    )
    args = parser.parse_args(argv)
    return Config(args.runs, args.questions, args.questions_file, args.incibot, args.output, args.keep, args.interval)


@dataclass(frozen=True)
class Timing:
    first_reply: float | None  # seconds; None: no reply within ANSWER_TIMEOUT
    answer: float | None
    kind: str  # what the answer's buttons say: "abstain" (hand-over), "answer", or "none"


def _bot_replies(standin: httpx.Client, channel: str, ts: str, bot: str) -> list[dict[str, Any]]:
    shown = standin.get("/_standin/messages", params={"channel": channel}).raise_for_status().json()
    root = next((m for m in reversed(shown["messages"]) if m["ts"] == ts), None)
    return [reply for reply in (root or {}).get("replies", []) if reply.get("user") == bot]


def ask(driver: SlackDriver, standin: httpx.Client, question: str, user: str) -> Timing:
    bot = driver.workspace.bot_user.id
    started = time.monotonic()
    said = driver.direct_message(question, user=user)
    first: float | None = None
    deadline = started + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        replies = _bot_replies(standin, said.channel, said.ts, bot)
        now = time.monotonic() - started
        if replies and first is None:
            first = now
        done = [reply for reply in replies if reply.get("text") != LOOKING]
        if done:
            actions = [b for b in done[0].get("blocks") or [] if b.get("type") == "actions"]
            ids = {str(e.get("action_id")) for block in actions for e in block.get("elements", [])}
            return Timing(first, now, "abstain" if "agent_ask_human" in ids else "answer")
        time.sleep(POLL)
    return Timing(first, None, "none")


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))  # nearest rank
    return round(ordered[index], 1)


def _spread(values_ms: Sequence[float]) -> dict[str, float]:
    return {"p50": _percentile(values_ms, 0.5), "p95": _percentile(values_ms, 0.95), "max": round(max(values_ms), 1)}


def summarize(timings: Sequence[Timing], questions: Sequence[str]) -> dict[str, Any]:
    firsts = [t.first_reply * 1000 for t in timings if t.first_reply is not None]
    answers = [t.answer * 1000 for t in timings if t.answer is not None]
    return {
        "questions": len(timings),
        "answered": len(answers),
        "abstained": sum(t.kind == "abstain" for t in timings),
        "first_reply_ms": _spread(firsts),
        "answer_ms": _spread(answers),
        "first_reply_over_3s": sum(value > FIRST_REPLY_LIMIT * 1000 for value in firsts) + len(timings) - len(firsts),
        "unanswered": [q for q, t in zip(questions, timings, strict=True) if t.answer is None],
        "decisions": [t.kind for t in timings],  # per question, in order: runs over the same questions must agree
    }


def code_version() -> str:
    """A digest of the code the service runs: the Python files under ``bot/`` and ``knowledge/``, as they are now."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "knowledge").rglob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run_once(cfg: Config, questions: Sequence[str], number: int) -> dict[str, Any]:
    ingest.CACHE_DIR.mkdir(exist_ok=True)
    code = code_version()
    directory = Path(tempfile.mkdtemp(prefix=f"agent-{number}-", dir=ingest.CACHE_DIR))
    try:
        with (
            slack_burst.running_service(cfg.incibot, directory, AGENT_SETTINGS, ready_timeout=180) as service,
            SlackDriver(service.standin_url, bot_url=service.bot_url, signing_secret=service.signing_secret) as driver,
            httpx.Client(base_url=service.standin_url, timeout=ACK_DEADLINE + 10) as standin,
        ):
            warm = ask(driver, standin, "how do I reset my password?", USERS[0])
            if warm.answer is None:
                raise ingest.BenchError("the warm-up question got no answer")
            timings = []
            for i, question in enumerate(questions):
                started = time.monotonic()
                timings.append(ask(driver, standin, question, USERS[i % len(USERS)]))
                time.sleep(max(0.0, cfg.interval - (time.monotonic() - started)))
    finally:
        if cfg.keep:
            print(f"    state and logs kept in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return {"code": code, **summarize(timings, questions)}


def load_questions(cfg: Config) -> list[str]:
    lines = [json.loads(line) for line in cfg.questions_file.read_text().splitlines() if line.strip()]
    questions = [str(line["question"]) for line in lines]
    if len(questions) < cfg.questions:
        questions = (questions * (cfg.questions // len(questions) + 1))[: cfg.questions]
    return questions[: cfg.questions]


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        questions = load_questions(cfg)
        runs = []
        for number in range(1, cfg.runs + 1):
            summary = run_once(cfg, questions, number)
            runs.append(summary)
            first, answer = summary["first_reply_ms"], summary["answer_ms"]
            print(
                f"run {number}: {summary['answered']}/{summary['questions']} answered "
                f"({summary['abstained']} abstained); first reply p50 {first['p50']:.0f} ms p95 {first['p95']:.0f} ms; "
                f"answer p50 {answer['p50']:.0f} ms p95 {answer['p95']:.0f} ms"
            )
    except (ingest.BenchError, httpx.HTTPError, OSError) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    medians = {
        measure: {q: statistics.median(run[measure][q] for run in runs) for q in ("p50", "p95")}
        for measure in ("first_reply_ms", "answer_ms")
    }
    print(
        f"median of {len(runs)} runs: first reply p50 {medians['first_reply_ms']['p50']:.0f} ms, "
        f"p95 {medians['first_reply_ms']['p95']:.0f} ms; answer p50 {medians['answer_ms']['p50']:.0f} ms, "
        f"p95 {medians['answer_ms']['p95']:.0f} ms"
    )
    result = {
        "benchmark": "agent",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
        "questions": cfg.questions,
        "interval_s": cfg.interval,
        "questions_file": os.path.relpath(cfg.questions_file, ROOT),
        "medians": medians,
        "runs": runs,
    }
    agree = len({tuple(run["decisions"]) for run in runs}) == 1
    result["runs_agree"] = agree
    if not agree:
        changed = len({run["code"] for run in runs}) > 1
        print("the runs' decisions disagree" + (": the code changed between runs" if changed else ""))
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {cfg.output}")
    ok = agree and all(run["answered"] == run["questions"] and run["first_reply_over_3s"] == 0 for run in runs)
    return 0 if ok else 1


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
