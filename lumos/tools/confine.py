"""Confinement applied inside a child process: resource limits and an audit-hook guard.

Standard library only, and importable as a lone file, because the ``Code`` sandbox child runs
under ``python -I`` without the project on its path. The guard (``sys.addaudithook``; a hook can
never be removed) refuses network access, new processes, signals to other processes, native
code through ctypes, and any file write or change outside one writable directory. Together with
the rlimits (CPU, address space, file size, core dumps, processes) this bounds what untrusted
model text can do in that child.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Callable

_DENIED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
                    "os.system", "os.kill", "os.killpg", "os.startfile", "os.setuid", "os.setgid", "pty.",
                    "ctypes.", "winreg.", "webbrowser.", "urllib.Request", "ftplib.", "smtplib.", "http.",
                    "imaplib.", "poplib.", "nntplib.", "telnetlib.", "resource.setrlimit", "resource.prlimit",
                    "sys.remote_exec", "_posixsubprocess.", "os.chroot", "gc.get_", "sys._current_frames",
                    "sys.settrace", "sys.setprofile", "sys.addaudithook", "os.setxattr",
                    "os.removexattr", "readline.", "os.setpriority", "os.sched_", "os.setsid", "os.setpgid",
                    "os.pidfd_open", "signal.pthread_kill")
_DENIED_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "multiprocessing", "_multiprocessing",
                             "socket", "_socket", "ssl", "_ssl", "subprocess", "pty", "signal", "_signal",
                             "resource", "gc", "readline", "_ctypes_test"})
# Events that change the file system; the path arguments must lie in the writable directory.
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
                "os.chmod": 1, "os.chown": 1, "os.truncate": 1, "os.utime": 1, "os.chflags": 1,
                "os.lchflags": 1, "os.lchmod": 1, "os.mkfifo": 1, "os.mknod": 1, "shutil.rmtree": 1,
                "shutil.copyfile": 2, "shutil.copytree": 2, "shutil.move": 2, "sqlite3.connect": 1}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def apply_limits(*, cpu_seconds: int | None, memory_mb: int | None, file_mb: int | None = 16) -> None:
    """Set this process's rlimits (lowering only; a process may not raise its hard limits back)."""
    if cpu_seconds is not None:
        _lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    if memory_mb is not None:
        _lower(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    if file_mb is not None:
        _lower(resource.RLIMIT_FSIZE, file_mb * 1024 * 1024)
    _lower(resource.RLIMIT_CORE, 0)
    _lower(resource.RLIMIT_NPROC, 0)  # not enforced for root; the audit guard refuses forks anyway


def _lower(limit: int, soft: int, hard: int | None = None) -> None:
    old_soft, old_hard = resource.getrlimit(limit)
    hard = soft if hard is None else hard
    if old_hard != resource.RLIM_INFINITY:
        hard = min(hard, old_hard)
        soft = min(soft, hard)
    try:
        resource.setrlimit(limit, (soft, hard))
    except (ValueError, OSError):
        pass  # e.g. RLIMIT_NPROC below the current count on some systems; the others still hold


# os functions that change the system without raising an audit event: replaced by refusals.
_UNAUDITED = ("mkfifo", "mknod", "setxattr", "removexattr", "setpriority", "sched_setaffinity", "sched_setscheduler",
              "sched_setparam", "pidfd_open", "setsid", "setpgid", "setpgrp", "register_at_fork")


def _disable_unaudited_calls() -> None:
    import posix

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("sandbox: this call is not allowed")

    for name in _UNAUDITED:
        for module in (os, posix):
            if hasattr(module, name):
                setattr(module, name, refuse)


class Gate:
    """Lets trusted code of the confined process do one gated event (e.g. lower its own rlimit)."""

    def __init__(self) -> None:
        self.open_for: str | None = None

    def run(self, event: str, action: "Callable[[], object]") -> object:
        self.open_for = event
        try:
            return action()
        finally:
            self.open_for = None


def install_guard(writable_dir: str | None, *, forget_denied_modules: bool = False) -> Gate:
    """Refuse network, processes, ctypes and writes outside ``writable_dir`` (None: no writes at all).

    ``forget_denied_modules``: drop every denied module already imported (``_signal`` is, at
    start-up) from ``sys.modules``, so that importing it again is refused too, and replace the
    ``os`` calls that raise no audit event (``mkfifo``, ``setxattr``, ...) by refusals.
    Returns the :class:`Gate` through which trusted code may still do a refused event. The deny
    lists are copied into the hook when it is installed, so changing this module's globals later
    changes nothing; the ways to reach the hook's own objects (``gc``, frames, tracing) are refused.
    This is an extra layer only: the isolation that holds is the operating system's
    (``lumos.tools.sandbox``), and the guard is not a sandbox on its own.
    """
    gate = Gate()
    root = os.path.realpath(writable_dir) if writable_dir else None
    denied_prefixes = tuple(_DENIED_PREFIXES)
    denied_modules = frozenset(_DENIED_MODULES)
    path_events = dict(_PATH_EVENTS)
    write_flags = _WRITE_FLAGS
    realpath, sep, fsdecode = os.path.realpath, os.sep, os.fsdecode
    forget = denied_modules if forget_denied_modules else {"ctypes", "_ctypes", "_posixsubprocess"}
    for name in list(sys.modules):
        if name.split(".")[0] in forget:
            del sys.modules[name]  # importing it again is an import event, which the hook refuses
    if forget_denied_modules:
        _disable_unaudited_calls()

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor; opening it was checked
        if isinstance(path, bytes):
            path = fsdecode(path)
        if not isinstance(path, str) or root is None:
            return False
        if path == ":memory:" or path == "":
            return True
        real = realpath(path)
        return real == root or real.startswith(root + sep)

    own_pid = str(os.getpid())

    def other_process(path: object) -> bool:
        """A path under /proc/<pid> of another process (its environ, mem, cmdline, fds)."""
        if isinstance(path, bytes):
            path = fsdecode(path)
        if not isinstance(path, str) or "proc" not in path:
            return False
        parts = realpath(path).split(sep)
        return len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != own_pid

    def hook(event: str, args: tuple) -> None:
        if event == gate.open_for:
            return
        if event.startswith(denied_prefixes):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args and str(args[0]).split(".")[0] in denied_modules:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            if other_process(path):
                raise PermissionError(f"sandbox: reading {path!r} (another process) is not allowed")
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writes and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the scratch directory is not allowed")
        elif event in path_events:
            if event == "sqlite3.connect" and args and str(args[0]).startswith("file:"):
                raise PermissionError("sandbox: sqlite URIs are not allowed")
            for path in args[:path_events[event]]:
                if not inside(path):
                    raise PermissionError(f"sandbox: {event} on {path!r} outside the scratch directory")

    sys.addaudithook(hook)
    return gate
