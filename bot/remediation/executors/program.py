"""Local program executor: the catalogue's absolute path (the allow-list) with an argv built from checked values.

Never a shell: ``argv[0]`` is the configured path, each further element a literal from the catalogue or exactly
one parameter's value. The program gets no stdin, ``/`` as its working directory and a minimal environment
(``PATH``, ``LANG`` and ``INCIBOT_IDEMPOTENCY_KEY``): the bot's secrets stay in the bot. It runs in its own
session, killed whole at the timeout; its output is kept up to ``max_output`` characters.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

from bot.remediation.catalogue import ActionSpec, ProgramExecutorSpec
from bot.remediation.executors.base import ExecutionResult, redact, truncate
from bot.remediation.parameters import ResolvedRun, render

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class ProgramExecutor:
    """Runs program actions."""

    def argv(self, action: ActionSpec, run: ResolvedRun) -> list[str]:
        """The exact argument vector (no shell parses it)."""
        spec = _spec(action)
        return [spec.path, *(render(arg, run.params) for arg in spec.args)]

    def preview(self, action: ActionSpec, run: ResolvedRun) -> str:
        argv = self.argv(action, run)
        return f"run {argv[0]} with arguments {argv[1:]} (no shell; timeout {action.timeout.total_seconds():g}s)"

    def execute(self, action: ActionSpec, run: ResolvedRun, idempotency_key: str, tries: int = 1) -> ExecutionResult:
        """One run of the program, whatever ``tries`` (it gets the key in ``INCIBOT_IDEMPOTENCY_KEY``)."""
        spec = _spec(action)
        argv = self.argv(action, run)
        refusal = _refuse(Path(spec.path))
        if refusal:
            return ExecutionResult("failed", f"{spec.path} {refusal}; nothing was run")
        env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "INCIBOT_IDEMPOTENCY_KEY": idempotency_key}
        timeout = action.timeout.total_seconds()
        proc = subprocess.Popen(  # an argv list, no shell, the allow-listed absolute path
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        response = {
            "argv": argv,
            "exit_code": proc.returncode,
            "stdout": truncate(out.decode("utf-8", errors="replace"), spec.max_output),
            "stderr": truncate(err.decode("utf-8", errors="replace"), spec.max_output),
        }
        name = Path(spec.path).name
        if timed_out:
            return ExecutionResult(
                "failed", f"{name} did not finish within {timeout:g}s and was killed", redact(response)
            )
        if proc.returncode != 0:
            return ExecutionResult("failed", f"{name} exited with status {proc.returncode}", redact(response))
        return ExecutionResult("succeeded", f"{name} finished (exit status 0)", redact(response))


def _spec(action: ActionSpec) -> ProgramExecutorSpec:
    if not isinstance(action.executor, ProgramExecutorSpec):
        raise TypeError(f"{action.name} is not a program action")
    return action.executor


def _refuse(path: Path) -> str | None:
    """Why the configured program must not run (missing, not executable, writable by anyone), or None."""
    try:
        info = path.stat()
    except OSError:
        return "does not exist"
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        return "is not an executable file"
    if info.st_mode & stat.S_IWOTH:
        return "is writable by every user"
    return None
