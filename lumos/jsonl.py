"""Append-only JSONL stores keyed by id, and tolerant readers of user-supplied data files.

Long jobs (conversion, evaluation) append one finished record per line and flush it (or a few
finished records at once with ``append_many``), so a job killed at any instant (SIGKILL
included) loses at most what it had not yet handed over and the line being written; on
restart :class:`JsonlStore` repairs such a torn last line, sets any other damaged line aside
(``<file>.damaged``, reported as ``file:line``), reports which keys are done, and the job skips
them. One writer at a time holds the store's lock. Nothing is written twice and nothing is
silently lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


@dataclass(frozen=True)
class BadRecord:
    """A line (or element) of an input file that could not be used, and why."""

    path: str
    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_no}: {self.reason}"


@dataclass(frozen=True)
class SourceRecord:
    path: str
    line_no: int  # 1-based line for JSONL, 1-based element index for a JSON list
    data: dict[str, Any]


def read_records(path: str | os.PathLike) -> Iterator[SourceRecord | BadRecord]:
    """Yield every record of a JSONL file or a JSON list, with its position.

    Malformed lines (invalid UTF-8 or JSON) and non-object elements come out as :class:`BadRecord`
    (the caller counts and reports them) instead of stopping the whole run.
    """
    path = str(path)
    with open(path, "rb") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head == b"[":
            data = handle.read()
            try:
                items = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield BadRecord(path, data.count(b"\n", 0, error.start) + 1, f"invalid UTF-8 at byte {error.start}")
                return
            except json.JSONDecodeError as error:
                yield BadRecord(path, error.lineno, f"invalid JSON: {error.msg}")
                return
            except (ValueError, RecursionError) as error:
                yield BadRecord(path, 1, f"invalid JSON: {type(error).__name__}: {str(error)[:200]}")
                return
            for index, item in enumerate(items, start=1):
                if isinstance(item, dict):
                    yield SourceRecord(path, index, item)
                else:
                    yield BadRecord(path, index, f"element is a {type(item).__name__}, not an object")
            return
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield BadRecord(path, line_no, f"invalid UTF-8 at byte {error.start} of the line")
                continue
            except json.JSONDecodeError as error:
                yield BadRecord(path, line_no, f"invalid JSON: {error.msg} (column {error.colno})")
                continue
            except (ValueError, RecursionError) as error:  # e.g. a number of more digits than int() reads
                yield BadRecord(path, line_no, f"invalid JSON: {type(error).__name__}: {str(error)[:200]}")
                continue
            if isinstance(item, dict):
                yield SourceRecord(path, line_no, item)
            else:
                yield BadRecord(path, line_no, f"line is a {type(item).__name__}, not an object")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically (temp file + rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


class StoreLocked(RuntimeError):
    """Another process is writing the store; the message names it."""


class JsonlDamageWarning(UserWarning):
    """Opening a store found damaged lines and set them aside (``<file>.damaged``)."""


class JsonlStore:
    """An append-only JSONL file whose records carry a unique key field.

    The store holds an exclusive lock (``fcntl.flock``) on its file for its whole life: a second
    writer, in this process or another, gets :class:`StoreLocked` naming the holder's pid.
    Opening repairs a torn last line (no trailing newline) left by a killed writer. Any other
    damaged line (invalid UTF-8, invalid JSON, JSON that is not an object, an object without the
    key, a key written before) is moved, with its line number and the reason, to
    ``<file>.damaged``, reported as ``file:line`` (a :class:`JsonlDamageWarning`, and in
    :attr:`damaged`), and every good line around it is kept. ``done`` holds the keys already
    written; :meth:`append` refuses a key twice.
    """

    def __init__(self, path: str | os.PathLike, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        self.damaged: list[BadRecord] = []
        self.repaired_torn_line: int | None = None
        self._handle = _open_locked(self.path)
        try:
            self._repair_and_index()
        except BaseException:
            self._handle.close()
            raise

    @property
    def damaged_path(self) -> Path:
        return self.path.with_name(self.path.name + ".damaged")

    def _repair_and_index(self) -> None:
        with open(self.path, "rb") as handle:  # read under the lock this store holds
            data = handle.read()
        if not data:
            return
        kept: list[bytes] = []
        set_aside: list[dict[str, Any]] = []
        first_line: dict[str, int] = {}
        lines = data.split(b"\n")
        torn = lines.pop()  # what follows the last newline: b"" unless the last line is torn
        for line_no, raw in enumerate(lines, start=1):
            reason = self._check_line(raw, line_no, first_line)
            if reason is None:
                kept.append(raw + b"\n")
            else:
                set_aside.append(self._damage(raw, line_no, reason))
        if torn and self._check_line(torn, len(lines) + 1, first_line) is None:
            kept.append(torn + b"\n")  # a whole record that only lacks its newline
        elif torn:
            self.repaired_torn_line = len(lines) + 1  # a killed writer's unfinished record: dropped, redone
        if set_aside:
            with open(self.damaged_path, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(entry) + "\n" for entry in set_aside))
                handle.flush()
                os.fsync(handle.fileno())
            shown = "; ".join(str(bad) for bad in self.damaged[:10])
            more = f" (and {len(self.damaged) - 10} more)" if len(self.damaged) > 10 else ""
            warnings.warn(f"{self.path}: set aside {len(set_aside)} damaged line(s) into {self.damaged_path}: "
                          f"{shown}{more}", JsonlDamageWarning, stacklevel=3)
        good = b"".join(kept)
        if good != data:
            self._rewrite(good)

    def _check_line(self, raw: bytes, line_no: int, first_line: dict[str, int]) -> str | None:
        """Why line ``line_no`` cannot be kept, or None (and its key is indexed)."""
        if not raw.strip():
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"invalid UTF-8 at byte {error.start}"
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as error:
            return f"invalid JSON: {getattr(error, 'msg', error)}"
        if not isinstance(record, dict):
            return f"a JSON {type(record).__name__}, not an object"
        if self.key not in record:
            return f"no {self.key!r} field"
        key = str(record[self.key])
        if key in first_line:
            return f"{self.key}={key!r} was already written at line {first_line[key]}"
        first_line[key] = line_no
        self.done.add(key)
        return None

    def _damage(self, raw: bytes, line_no: int, reason: str) -> dict[str, Any]:
        self.damaged.append(BadRecord(str(self.path), line_no, reason))
        return {"file": str(self.path), "line": line_no, "reason": reason,
                "text": raw.decode("utf-8", errors="backslashreplace")}

    def _rewrite(self, good: bytes) -> None:
        """Replace the file by its good lines: a locked temp file renamed over it (the lock moves with it)."""
        tmp = self.path.with_name(self.path.name + f".repair-{os.getpid()}")
        handle = _open_locked(tmp, truncate=True)
        try:
            handle.write(good.decode("utf-8"))  # every kept line was checked to be UTF-8
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        self._handle.close()
        self._handle = handle

    def __contains__(self, key: object) -> bool:
        return str(key) in self.done

    def remove(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        """Drop the records ``predicate`` picks (e.g. failed ones to redo), under this store's lock; returns how many.

        The file is rewritten atomically (a locked temp file renamed over it), so no other writer
        can slip in between reading the records and writing what is kept.
        """
        self._handle.flush()
        kept, removed = [], 0
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line) if line.strip() else None
                if record is not None and predicate(record):
                    removed += 1
                    self.done.discard(str(record[self.key]))
                else:
                    kept.append(line)
        if removed:
            self._rewrite("".join(kept).encode("utf-8"))
        return removed

    def clear(self) -> None:
        """Start afresh: every record dropped, under this store's lock."""
        self._rewrite(b"")
        self.done.clear()

    def append(self, record: dict[str, Any]) -> None:
        key = str(record[self.key])
        if key in self.done:
            raise ValueError(f"{self.path}: record {self.key}={key!r} was already written")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        self.done.add(key)

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records with one write and one flush; refuses the batch if any key repeats."""
        keys = [str(record[self.key]) for record in records]
        new = set(keys)
        if len(new) != len(keys) or not new.isdisjoint(self.done):
            seen: set[str] = set()
            for key in keys:
                if key in self.done or key in seen:
                    raise ValueError(f"{self.path}: record {self.key}={key!r} was already written")
                seen.add(key)
        if not records:
            return
        self._handle.write("".join(json.dumps(record) + "\n" for record in records))
        self._handle.flush()
        self.done.update(new)

    def records(self) -> Iterator[dict[str, Any]]:
        self._handle.flush()
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_locked(path: Path, *, truncate: bool = False):
    """Open ``path`` for appending (reading too) under an exclusive lock, or raise :class:`StoreLocked`."""
    handle = open(path, "w+" if truncate else "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(handle.fileno())
        handle.close()
        raise StoreLocked(f"{path} is being written by {holder}; one writer at a time "
                          "(wait for it to finish, or stop it)") from None
    except OSError:
        pass  # a file system without flock (some network mounts): no lock to hold
    return handle


def _lock_holder(fd: int) -> str:
    """The process holding a flock on ``fd``'s file, from /proc/locks where there is one."""
    info = os.fstat(fd)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if "FLOCK" not in fields or "->" in fields:
                    continue
                pid, device_inode = fields[-4], fields[-3]
                if device_inode.rsplit(":", 1)[-1] == str(info.st_ino) and pid.isdigit():
                    return f"process {pid}" if int(pid) != os.getpid() else f"this process (pid {pid})"
    except OSError:
        pass
    return "another process"


def code_version() -> str:
    """The git commit of the project (with ``-dirty`` when modified), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run_info(directory: str | os.PathLike, config: dict[str, Any],
                   packages: Iterable[str] = ("torch", "transformers", "sympy", "openai")) -> Path:
    """Write the run record (config, code version, package versions) beside a job's outputs.

    ``directory`` is a folder (``run.json`` goes inside) or a file name ending in ``.json``.
    """
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {
        "config": config,
        "code_version": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(directory)
    if path.suffix != ".json":
        path = path / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return path
