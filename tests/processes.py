"""Helpers for tests that drive incibot as a user does: the ``incibot`` command in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
_CONSOLE_SCRIPT = Path(sys.executable).with_name("incibot")
# The installed console script, as people run it; ``python -m bot`` where the package is not installed.
INCIBOT: tuple[str, ...] = (str(_CONSOLE_SCRIPT),) if _CONSOLE_SCRIPT.is_file() else (sys.executable, "-m", "bot")


def incibot_env(state_dir: Path, database_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of an incibot process: ours without any INCIBOT_* setting, plus the given ones.

    ``settings`` are named as fields (``ingest_tokens="..."`` sets ``INCIBOT_INGEST_TOKENS``).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("INCIBOT_")}
    env["INCIBOT_STATE_DIR"] = str(state_dir)
    if database_url is not None:
        env["INCIBOT_DATABASE_URL"] = database_url
    env["INCIBOT_KNOWLEDGE"] = "false"  # loading the model costs seconds per process; tests of search turn it on
    env["INCIBOT_CORRELATION"] = "source"  # likewise (it embeds alert texts); tests of correlation turn it on
    env["INCIBOT_CLASSIFICATION"] = "false"  # likewise; tests of classification turn it on
    env["INCIBOT_NIGHTLY_TRAINING"] = "off"  # a test run across 03:00 UTC must not train models
    env.update({f"INCIBOT_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    if INCIBOT[0] == sys.executable:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _cwd(env: dict[str, str]) -> Path:
    """Run outside the checkout, next to the state dir, so that nothing lands in the working tree."""
    return Path(env["INCIBOT_STATE_DIR"]).parent


def run_incibot(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one ``incibot`` command to completion; its output is captured as text."""
    return subprocess.run(
        [*INCIBOT, *args],
        env=env,
        cwd=_cwd(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    """``incibot serve`` in a subprocess on a free loopback port, its output (stdout and stderr) in a file.

    As a context manager it starts the server, waits until ``/healthz`` answers, and stops it on exit
    (SIGTERM, then SIGKILL if it does not stop in time).
    """

    def __init__(self, env: dict[str, str], log_path: Path, *, host: str = "127.0.0.1", port: int | None = None):
        self.env = env
        self.log_path = log_path
        self.host = host
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*INCIBOT, "serve", "--host", self.host, "--port", str(self.port)],
                env=self.env,
                cwd=_cwd(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        """Poll ``/healthz`` until it answers 200; fail with the log if the process exits or times out."""
        process = self._running()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=1) as http:
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    raise AssertionError(f"incibot serve exited with {process.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"incibot serve not healthy within {timeout}s:\n{self.log()}")
                time.sleep(0.05)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, and the exit status once it has stopped (negative: the signal that ended it)."""
        process = self._running()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def kill(self) -> int:
        process = self._running()
        process.send_signal(signal.SIGKILL)
        return process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("the server was not started")
        return self.process

    def __enter__(self) -> ServeProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.terminate()
        except subprocess.TimeoutExpired:
            self.kill()


class StandinProcess:
    """``incibot standin serve`` in a subprocess; ``info`` is its standin.json once written."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "standin.json"
        self.log_path = state_dir.parent / "standin.log"
        self.stale_url = _url_in(self.state_file)
        env = incibot_env(state_dir)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*INCIBOT, "standin", "serve", "--state-dir", str(state_dir), *args],
                env=env,
                cwd=state_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.info: dict[str, Any] = wait_for(self._written, timeout=30)

    def _written(self) -> dict[str, Any] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"standin serve exited with {self.process.returncode}:\n{self.log()}")
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        assert isinstance(data, dict)
        return data if data.get("url") and data["url"] != self.stale_url else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(20)


def _url_in(path: Path) -> str | None:
    try:
        url = json.loads(path.read_text()).get("url")
    except FileNotFoundError:
        return None
    return str(url) if url else None
