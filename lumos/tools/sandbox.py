"""Run model-written Python (the ``Code`` action) in an isolated child process.

What holds is the operating system's isolation. Where bubblewrap (``bwrap``) can create
namespaces, each run is a fresh ``python -I`` in new user, PID, network, mount, IPC, UTS and
cgroup namespaces, as an unprivileged uid with every capability dropped, under a seccomp filter
that refuses new processes (``lumos.tools.seccomp``), seeing a read-only filesystem made of the
Python installation and the system libraries only (no home directories, no project, no data),
with a fresh size-capped tmpfs as the only writable directory (its cwd), a fresh ``/proc`` that
shows only its own processes (so no ``/proc/<parent>/environ`` or ``/mem``), no network
interface but a down loopback, and an empty environment. Inside, rlimits (CPU, address space,
file size, core) and the audit-hook guard of ``lumos.tools.confine`` are an extra layer.

Where namespaces are not available this says so once (a :class:`SandboxWarning`) and falls back
to the strongest thing left: without ``bwrap`` but as root, ``unshare`` (PID, network, IPC) and
``setpriv`` to an unprivileged uid, when the interpreter is reachable by one (``unprivileged``),
else the same namespaces as root without capabilities (``root-namespaces``); otherwise rlimits
and the guard alone. :func:`isolation` names the level in use.

Every call has one deadline for the whole call (start-up included); what the child writes is
read up to a cap; at the end, whatever the call started is killed (the namespace dies with its
first process; otherwise the process group). The value of the code's last expression (or of
``expression``) comes back as text, with what it printed. Earlier results are given to the code
as bound names (``variables``), never pasted into its source.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

from lumos.tools import seccomp
from lumos.tools.base import ToolError

_CHILD = str(Path(__file__).resolve().with_name("sandbox_child.py"))
_CONFINE = str(Path(__file__).resolve().with_name("confine.py"))
STARTUP_GRACE = 0.75  # seconds of wall time allowed on top of the limit for starting the interpreter
MAX_OUTPUT_BYTES = 1_000_000  # what is read of the child's stdout; beyond it the child is killed
MAX_ERROR_BYTES = 64_000  # what is kept of its stderr
MAX_VARIABLE_CHARS = 100_000  # of one bound variable's text
SCRATCH_MB = 64  # size of the writable tmpfs
NOBODY = 65534
_INSIDE = "/sandbox"  # where the child program lives inside the namespace view

Isolation = Literal["namespaces", "unprivileged", "root-namespaces", "rlimits"]


class SandboxError(ToolError):
    """The code failed, was refused, or ran past a limit; the message says which."""


class SandboxWarning(RuntimeWarning):
    """The sandbox runs without namespace isolation here (said once per process)."""


@dataclass(frozen=True)
class SandboxResult:
    value: str | None       # str() of the last expression's value, None when there was none
    value_type: str | None  # its type name: 'int', 'float', 'Fraction', 'bool', 'str', ...
    stdout: str


def run_code(code: str, *, expression: str | None = None, timeout: float = 1.0, memory_mb: int = 512,
             file_mb: int = 16, variables: Mapping[str, object] | None = None,
             audit_guard: bool = True) -> SandboxResult:
    """Run ``code`` (then evaluate ``expression``, if given) isolated; raise :class:`SandboxError` on failure.

    ``variables`` are bound as names before the code runs (values: numbers or text), as data.
    ``audit_guard=False`` leaves out the in-process guard (tests use it to show that the
    operating-system isolation holds alone).
    """
    bound = _checked_variables(variables or {})
    level = isolation()
    scratch_host = None if level == "namespaces" else tempfile.mkdtemp(prefix="lumos-sandbox-")
    scratch = f"/tmp/lumos-sandbox-{secrets.token_hex(6)}" if scratch_host is None else scratch_host
    request = json.dumps({"code": code, "expression": expression, "scratch": scratch, "variables": bound,
                          "guard": bool(audit_guard),
                          "cpu_seconds": max(1, math.ceil(timeout)), "memory_mb": memory_mb,
                          "file_mb": file_mb}).encode()
    deadline = time.monotonic() + timeout + STARTUP_GRACE
    filter_read = None
    try:
        if level == "namespaces":
            filter_read = _filter_pipe()
            command = _bwrap_command(scratch, filter_read)
        elif level == "unprivileged":
            os.chown(scratch_host, NOBODY, NOBODY)
            command = _unshare_command()
        elif level == "root-namespaces":
            command = _unshare_command(drop_privileges=False)
        else:
            command = [sys.executable, "-I", _CHILD]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=scratch_host or "/", env={"PATH": os.defpath}, start_new_session=True,
                                   pass_fds=(filter_read,) if filter_read is not None else ())
        if filter_read is not None:
            os.close(filter_read)
            filter_read = None
        try:
            stdout, stderr, stopped = _communicate(process, request, deadline)
        finally:
            _kill_all(process)
    finally:
        if filter_read is not None:
            os.close(filter_read)
        if scratch_host is not None:
            shutil.rmtree(scratch_host, ignore_errors=True)
    if stopped == "deadline":
        raise SandboxError(f"code ran past its time limit of {timeout:g} s and was stopped")
    if stopped == "output":
        raise SandboxError(f"code wrote more than {MAX_OUTPUT_BYTES} bytes of output and was stopped")
    answer = _last_json_line(stdout)
    if answer is None:
        raise SandboxError(_describe_death(process.returncode, stderr, timeout, memory_mb))
    if not answer.get("ok"):
        error = str(answer.get("error", "unknown error"))
        if error.startswith("MemoryError"):
            error = f"code exceeded its memory limit of {memory_mb} MB ({error})"
        raise SandboxError(error)
    return SandboxResult(_text_or_none(answer.get("value")), _text_or_none(answer.get("type")),
                         str(answer.get("stdout", "")))


# ---------------------------------------------------------------------- isolation level


def isolation() -> Isolation:
    """The strongest isolation this machine allows (probed once); warns once when it is not namespaces."""
    level, reason = _probe()
    if level != "namespaces":
        _warn_once(level, reason)
    return level


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[Isolation, str]:
    reasons = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        reasons.append("bubblewrap (bwrap) is not installed")
    elif not seccomp.supported():
        reasons.append("no seccomp filter for this architecture")
    else:
        try:
            probe = subprocess.run(_bwrap_command("/tmp/lumos-probe", None, program=["true"]), capture_output=True,
                                   timeout=30, env={"PATH": os.defpath})
            if probe.returncode == 0:
                return "namespaces", ""
            reasons.append(f"bwrap cannot create namespaces here: "
                           f"{probe.stderr.decode(errors='replace').strip()[:300]}")
        except (OSError, subprocess.SubprocessError) as error:
            reasons.append(f"bwrap failed: {error}")
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("setpriv"):
        if _reachable_by_others(sys.executable):
            try:
                probe = subprocess.run(_unshare_command(program=["true"]), capture_output=True, timeout=30,
                                       env={"PATH": os.defpath})
                if probe.returncode == 0:
                    return "unprivileged", "; ".join(reasons)
                reasons.append(f"unshare failed: {probe.stderr.decode(errors='replace').strip()[:300]}")
            except (OSError, subprocess.SubprocessError) as error:
                reasons.append(f"unshare failed: {error}")
        else:
            reasons.append("the Python interpreter is not readable by an unprivileged uid")
            try:
                probe = subprocess.run(_unshare_command(program=["true"], drop_privileges=False), capture_output=True,
                                       timeout=30, env={"PATH": os.defpath})
                if probe.returncode == 0:
                    return "root-namespaces", "; ".join(reasons)
                reasons.append(f"unshare failed: {probe.stderr.decode(errors='replace').strip()[:300]}")
            except (OSError, subprocess.SubprocessError) as error:
                reasons.append(f"unshare failed: {error}")
    return "rlimits", "; ".join(reasons)


_warned: set[str] = set()


def _warn_once(level: Isolation, reason: str) -> None:
    if level in _warned:
        return
    _warned.add(level)
    what = {"unprivileged": "PID and network namespaces and an unprivileged uid, but the filesystem is not read-only",
            "root-namespaces": "PID and network namespaces without capabilities, but as root on a writable filesystem "
                               "(files outside the scratch directory are guarded in-process only)",
            }.get(level, "rlimits and an in-process guard only (no operating-system isolation)")
    warnings.warn(f"the Code sandbox runs with {what}: {reason}. Install bubblewrap (apt-get install bubblewrap) "
                  "on a kernel that allows user namespaces for full isolation.", SandboxWarning, stacklevel=3)


def _python_roots() -> list[str]:
    """Directories the interpreter needs to start (read-only inside)."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(roots)


def isolated_command(program: list[str], *, read_only: tuple[str, ...] = ()) -> tuple[list[str], int | None]:
    """``program`` (a long-lived helper, e.g. the symbolic worker) under the strongest isolation available.

    Returns the command and a descriptor to hand to ``Popen(pass_fds=...)`` and close after it
    (the seccomp filter; None when there is none). ``read_only`` paths are visible, read-only.
    Under bubblewrap the helper gets what a ``Code`` child gets; with the ``unshare`` fallbacks, the
    PID, network and IPC namespaces without capabilities; otherwise it runs as it is.
    """
    level = isolation()
    if level == "namespaces":
        filter_fd = _filter_pipe()
        # No --die-with-parent: it follows the *thread* that started the helper, and a helper outlives
        # threads; it ends on its own when its stdin closes (the caller's end, also at the caller's death).
        return _bwrap_command("/tmp/lumos-helper", filter_fd, program, read_only=read_only,
                              die_with_parent=False), filter_fd
    if level in ("unprivileged", "root-namespaces"):
        return _unshare_command(program, drop_privileges=False), None
    return list(program), None


def _bwrap_command(scratch: str, filter_fd: int | None, program: list[str] | None = None, *,
                   read_only: tuple[str, ...] = (), die_with_parent: bool = True) -> list[str]:
    command = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--new-session",
               *(["--die-with-parent"] if die_with_parent else []), "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL", "--clearenv",
               "--setenv", "PATH", "/usr/bin:/bin", "--hostname", "sandbox"]
    for system in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/localtime"):
        if os.path.lexists(system):
            command += ["--ro-bind", system, system] if not os.path.islink(system) else \
                ["--symlink", os.readlink(system), system]
    # The fresh /tmp first: binds made before it would be hidden under it (a project or a virtual
    # environment that lives below /tmp).
    command += ["--proc", "/proc", "--dev", "/dev", "--size", str(SCRATCH_MB * 1024 * 1024), "--tmpfs", "/tmp"]
    for root in _python_roots():
        if not root.startswith(("/usr/", "/lib")):
            command += ["--ro-bind", root, root]
    for path in read_only:
        command += ["--ro-bind", path, path]
    command += ["--ro-bind", _CHILD, f"{_INSIDE}/sandbox_child.py", "--ro-bind", _CONFINE, f"{_INSIDE}/confine.py",
                "--dir", scratch, "--chdir", scratch, "--remount-ro", "/"]
    if filter_fd is not None:
        command += ["--seccomp", str(filter_fd)]
    return command + (program or [os.path.realpath(sys.executable), "-I", f"{_INSIDE}/sandbox_child.py"])


def _unshare_command(program: list[str] | None = None, *, drop_privileges: bool = True) -> list[str]:
    identity = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if drop_privileges else []
    return (["unshare", "--pid", "--net", "--ipc", "--uts", "--mount", "--fork", "--kill-child", "--mount-proc",
             "setpriv", *identity, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
            + (program or [sys.executable, "-I", _CHILD]))


def _reachable_by_others(path: str) -> bool:
    """Whether every directory above ``path`` can be traversed, and the file read, by any uid."""
    current = os.path.realpath(path)
    while True:
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return False
        if not mode & 0o001 and current != os.path.realpath(path):
            return False
        if current == "/":
            return True
        current = os.path.dirname(current)


def _filter_pipe() -> int:
    program = seccomp.filter_program()
    read_end, write_end = os.pipe()
    os.write(write_end, program)  # far smaller than a pipe's buffer
    os.close(write_end)
    return read_end


# ---------------------------------------------------------------------- running one child


def _communicate(process: subprocess.Popen[bytes], request: bytes, deadline: float) -> tuple[bytes, bytes, str | None]:
    """Send the request, read stdout/stderr up to their caps until both close or the deadline passes."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        process.stdin.write(request)
        process.stdin.close()
    except BrokenPipeError:
        pass
    out, err = bytearray(), bytearray()
    streams = {process.stdout.fileno(): out, process.stderr.fileno(): err}
    while streams:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(out), bytes(err), "deadline"
        readable, _, _ = select.select(list(streams), [], [], remaining)
        for fd in readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                del streams[fd]
                continue
            buffer = streams[fd]
            if buffer is out and len(out) + len(chunk) > MAX_OUTPUT_BYTES:
                return bytes(out), bytes(err), "output"
            if buffer is err:
                chunk = chunk[:max(0, MAX_ERROR_BYTES - len(err))]
            buffer.extend(chunk)
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return bytes(out), bytes(err), "deadline"
        time.sleep(0.005)
    return bytes(out), bytes(err), None


def _kill_all(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group the call started (the namespace's processes die with its first one)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def _checked_variables(variables: Mapping[str, object]) -> dict[str, object]:
    bound: dict[str, object] = {}
    for name, value in variables.items():
        if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")):
            raise SandboxError(f"cannot bind {name!r}: not a plain name")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            value = str(value)
        if isinstance(value, int) and value.bit_length() > 13_000:  # int() reads at most 4,300 digits
            raise SandboxError(f"{name} is too large to bind")
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        if isinstance(value, str) and len(value) > MAX_VARIABLE_CHARS:
            raise SandboxError(f"{name} is longer than {MAX_VARIABLE_CHARS} characters")
        bound[name] = value
    return bound


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _last_json_line(stdout: bytes) -> dict | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        try:
            answer = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(answer, dict) and "ok" in answer:
            return answer
    return None


def _describe_death(returncode: int, stderr: bytes, timeout: float, memory_mb: int) -> str:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return f"code ran past its CPU time limit of {timeout:g} s and was stopped"
    if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return "code wrote a file larger than the sandbox allows"
    detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    if "MemoryError" in detail[0]:
        return f"code exceeded its memory limit of {memory_mb} MB"
    return f"code ended without a result (exit {returncode}): {detail[0][:500]}"
