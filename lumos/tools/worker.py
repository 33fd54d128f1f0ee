"""A persistent, confined worker process for symbolic maths, with a deadline on every call.

sympy is imported once in the worker (never in the parent), which keeps ``import lumos.tools``
cheap and keeps ``parse_expr`` of model text out of the calling process. The worker runs under
the same operating-system isolation as the ``Code`` sandbox (``sandbox.isolated_command``: where
bubblewrap works, its own namespaces, uid 65534, a read-only view of Python and the project, no
network, the seccomp filter). The worker runs under
rlimits (address space, CPU per call) and the audit guard of ``lumos.tools.confine``, with an
environment of its own (nothing of the caller's: no API keys); a call that
misses its deadline gets the worker killed, the caller a :class:`ToolError`, and the next call a
fresh worker.

Protocol: one JSON object per line. Request ``{"op": name, "args": [...]}``; answer
``{"ok": true, "value": ...}`` or ``{"ok": false, "error": "..."}``. The worker first prints
``{"ready": true}`` once sympy is imported.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lumos.tools.base import ToolError

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from lumos.tools.worker import serve; serve(float(sys.argv[2]), int(sys.argv[3]))")
STARTUP_TIMEOUT = 120.0  # importing sympy on a loaded machine; not part of any call's deadline
MAX_ANSWER_BYTES = 1_000_000


class SymbolicWorker:
    """Parent-side handle: ``call(op, *args)`` with a deadline of ``timeout`` seconds."""

    def __init__(self, timeout: float = 1.0, memory_mb: int = 512):
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._ready = False
        self._stderr: "tempfile._TemporaryFileWrapper[bytes] | None" = None  # type: ignore[name-defined]
        self._lock = threading.Lock()
        self.restarts = 0

    def call(self, op: str, *args: object) -> object:
        with self._lock:
            process = self._ensure_ready()
            request = json.dumps({"op": op, "args": list(args)}).encode() + b"\n"
            try:
                process.stdin.write(request)  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
                answer = self._read_line(time.monotonic() + self.timeout)
            except (BrokenPipeError, OSError) as error:
                self._restart()
                raise ToolError(f"the symbolic worker failed ({error}); it was restarted") from None
            if answer is None:
                self._restart()
                raise ToolError(f"symbolic evaluation took longer than {self.timeout:g} s and was stopped")
            if answer == "":
                self._restart()
                raise ToolError("symbolic evaluation exceeded its CPU or memory limit and was stopped")
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise ToolError(reply.get("error", "symbolic evaluation failed"))
        return reply["value"]

    def start(self) -> None:
        """Start the worker now and wait until it is ready (otherwise the first call does)."""
        with self._lock:
            self._ensure_ready()

    def close(self) -> None:
        with self._lock:
            self._kill()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()

    # ------------------------------------------------------------------ process management

    def _spawn(self) -> None:
        from lumos.tools.sandbox import isolated_command

        self._stderr = tempfile.TemporaryFile()
        program = [os.path.realpath(sys.executable), "-I", "-c", _BOOT, _PROJECT_ROOT, str(self.timeout),
                   str(self.memory_mb)]
        command, filter_fd = isolated_command(program, read_only=(_PROJECT_ROOT,))
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, close_fds=True,
                pass_fds=(filter_fd,) if filter_fd is not None else (),
                env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"})  # no key, token or path of the caller reaches it
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        self._buffer = b""
        self._ready = False

    def _restart(self) -> None:
        """Kill a stuck or dead worker and start its successor at once, so it warms up meanwhile."""
        self._kill()
        self.restarts += 1
        self._spawn()

    def _ensure_ready(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._kill()
            self._spawn()
        assert self._process is not None
        if not self._ready:
            ready = self._read_line(time.monotonic() + STARTUP_TIMEOUT)
            if not ready or not json.loads(ready).get("ready"):
                self._stderr.seek(0)
                detail = self._stderr.read()[-2000:].decode(errors="replace")
                self._kill()
                raise ToolError(f"the symbolic worker did not start: {detail or 'no output'}")
            self._ready = True
        return self._process

    def _read_line(self, deadline: float) -> str | None:
        """The next answer line; None when the deadline passed, "" when the worker died."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return ""
            self._buffer += chunk
            if len(self._buffer) > MAX_ANSWER_BYTES:
                raise ToolError("the symbolic worker's answer is too large")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def _kill(self) -> None:
        process, self._process = self._process, None
        self._buffer = b""
        self._ready = False
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, self._stderr):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------------- worker side


def serve(timeout: float, memory_mb: int) -> None:
    """The worker's main loop (runs in the child)."""
    import math
    import resource

    from lumos.tools import confine
    from lumos.tools.engines.symbolic import OPERATIONS, SymbolicError

    confine.apply_limits(cpu_seconds=None, memory_mb=memory_mb, file_mb=1)
    hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)[1]
    out = sys.stdout
    # Warm up the solver paths once so their lazy imports happen before the guard.
    OPERATIONS["solve_equations"](["x + 1 = 2"])
    OPERATIONS["solve_inequality"](["x > 1"])
    gate = confine.install_guard(None)
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        budget = int(usage.ru_utime + usage.ru_stime) + math.ceil(timeout) + 1
        # A CPU bound per call (SIGXCPU ends the worker) behind the parent's wall-clock deadline.
        gate.run("resource.setrlimit", lambda: resource.setrlimit(resource.RLIMIT_CPU, (budget, hard_cpu)))
        try:
            request = json.loads(line)
            value = OPERATIONS[request["op"]](*request["args"])
            reply = {"ok": True, "value": value}
        except (SymbolicError, ValueError, TypeError, ArithmeticError, NotImplementedError, KeyError,
                AttributeError, IndexError, RecursionError, MemoryError, PermissionError) as error:
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"[:2000]}
        out.write(json.dumps(reply) + "\n")
        out.flush()
