"""Append-only JSONL stores keyed by id, and tolerant readers of user-supplied data files.

Long jobs (conversion, evaluation) append one finished record per line and flush it (or a few
finished records at once with ``append_many``), so a job killed at any instant (SIGKILL
included) loses at most what it had not yet handed over and the line being written; on
restart :class:`JsonlStore` drops such a torn last line, reports which keys are done, and
the job skips them. Nothing is written twice and nothing is silently lost.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator


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

    Malformed lines and non-object elements come out as :class:`BadRecord` (the caller
    counts and reports them) instead of stopping the whole run.
    """
    path = str(path)
    with open(path, encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head == "[":
            try:
                items = json.load(handle)
            except json.JSONDecodeError as error:
                yield BadRecord(path, error.lineno, f"invalid JSON: {error.msg}")
                return
            for index, item in enumerate(items, start=1):
                if isinstance(item, dict):
                    yield SourceRecord(path, index, item)
                else:
                    yield BadRecord(path, index, f"element is a {type(item).__name__}, not an object")
            return
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                yield BadRecord(path, line_no, f"invalid JSON: {error.msg} (column {error.colno})")
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


class JsonlStore:
    """An append-only JSONL file whose records carry a unique key field.

    Opening repairs a torn last line left by a killed writer. ``done`` holds the keys
    already written; :meth:`append` refuses a key twice.
    """

    def __init__(self, path: str | os.PathLike, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        self._repair_and_index()
        self._handle = open(self.path, "a", encoding="utf-8")

    def _repair_and_index(self) -> None:
        if not self.path.exists():
            return
        good_bytes = 0
        with open(self.path, "rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # torn write from a killed run: drop it
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    break
                self.done.add(str(record[self.key]))
                good_bytes += len(raw)
        if good_bytes != self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_bytes)

    def __contains__(self, key: object) -> bool:
        return str(key) in self.done

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
