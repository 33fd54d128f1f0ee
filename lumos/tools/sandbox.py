"""Run model-written Python (the ``Code`` action) in a confined child process.

Each run is a fresh ``python -I`` (no user site, no environment, no project path) whose cwd is a
new scratch directory, with rlimits on CPU time, address space, file size and processes, a
wall-clock deadline, and an audit-hook guard (``lumos.tools.confine``) that refuses network
access, new processes and writes outside the scratch directory. The value of the code's last
expression (or of ``expression``) comes back as text, with what it printed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lumos.tools.base import ToolError

_CHILD = str(Path(__file__).resolve().with_name("sandbox_child.py"))
STARTUP_GRACE = 1.0  # seconds of wall time allowed on top of the limit for starting the interpreter


class SandboxError(ToolError):
    """The code failed, was refused, or ran past a limit; the message says which."""


@dataclass(frozen=True)
class SandboxResult:
    value: str | None       # str() of the last expression's value, None when there was none
    value_type: str | None  # its type name: 'int', 'float', 'Fraction', 'bool', 'str', ...
    stdout: str


def run_code(code: str, *, expression: str | None = None, timeout: float = 1.0, memory_mb: int = 512,
             file_mb: int = 16) -> SandboxResult:
    """Run ``code`` (then evaluate ``expression``, if given) confined; raise :class:`SandboxError` on failure."""
    scratch = tempfile.mkdtemp(prefix="lumos-sandbox-")
    request = json.dumps({"code": code, "expression": expression, "scratch": scratch,
                          "cpu_seconds": max(1, math.ceil(timeout)), "memory_mb": memory_mb, "file_mb": file_mb})
    process = subprocess.Popen([sys.executable, "-I", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=scratch, env={"PATH": os.defpath},
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(request.encode(), timeout=timeout + STARTUP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise SandboxError(f"code ran past its time limit of {timeout:g} s and was stopped") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    answer = _last_json_line(stdout)
    if answer is None:
        raise SandboxError(_describe_death(process.returncode, stderr, timeout, memory_mb))
    if not answer.get("ok"):
        error = answer.get("error", "unknown error")
        if error.startswith("MemoryError"):
            error = f"code exceeded its memory limit of {memory_mb} MB ({error})"
        raise SandboxError(error)
    return SandboxResult(answer.get("value"), answer.get("type"), answer.get("stdout", ""))


def _last_json_line(stdout: bytes) -> dict | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and "ok" in answer:
            return answer
    return None


def _describe_death(returncode: int, stderr: bytes, timeout: float, memory_mb: int) -> str:
    if returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL:
        return f"code ran past its CPU time limit of {timeout:g} s and was stopped"
    if returncode == -signal.SIGXFSZ:
        return "code wrote a file larger than the sandbox allows"
    detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    if "MemoryError" in detail[0]:
        return f"code exceeded its memory limit of {memory_mb} MB"
    return f"code ended without a result (exit {returncode}): {detail[0]}"
