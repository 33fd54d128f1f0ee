"""Loading Mind2Web tasks, in the shapes :data:`ACCEPTED_SHAPES` names.

- task level, the official JSON: a folder of split folders (``<data_dir>/<split>/*.json``, splits
  ``test_task``, ``test_website``, ``test_domain``) or one such ``*.json`` file, each a list of tasks
  with ``confirmed_task``, ``action_reprs`` and ``actions`` each holding ``operation`` {op, value},
  ``pos_candidates``, ``neg_candidates`` and ``cleaned_html``;
- step level, the SkillGen derived file (``{"instances": [...]}``: a prompt listing the previous
  actions, up to 30 candidate elements with their ``bnid`` and the truncated cleaned HTML;
  ``metadata`` with the gold ``target_bnids``, ``op`` and ``value``), each instance read as a
  one-step task whose history is its listed previous actions.

Candidates keep the source's order (positives first); candidate texts are MindAct's
(:mod:`eval.mind2web.candidates`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eval.mind2web.candidates import candidate_elements
from lumos.tools.web import Element

SPLITS = ("test_task", "test_website", "test_domain")
STEP_LEVEL_SPLIT = "step_level"  # the split name given to a step-level file's one-step tasks
ACCEPTED_SHAPES = ("a folder of split folders test_task/, test_website/, test_domain/ of Mind2Web task lists; "
                   "a Mind2Web task-list .json file (confirmed_task, action_reprs, actions); "
                   'a step-level .json file {"instances": [...]} (SkillGen action-level)')


class Mind2WebDataError(ValueError):
    """A Mind2Web file or record without the expected fields."""


@dataclass(frozen=True)
class Step:
    op: str
    value: str
    action_repr: str
    gold_ids: frozenset[str]
    candidates: tuple[Element, ...]  # positives first, as the source lists them
    previous_actions: tuple[str, ...] = ()  # the gold action_reprs of every earlier step


@dataclass(frozen=True)
class Task:
    id: str
    task: str
    website: str
    steps: tuple[Step, ...]
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def task_from_record(record: dict[str, Any], split: str = "") -> Task:
    try:
        reprs = list(record["action_reprs"])
        steps = []
        for index, action in enumerate(record["actions"]):
            positives, negatives = action["pos_candidates"], action["neg_candidates"]
            operation = action["operation"]
            steps.append(Step(
                op=operation["op"], value=operation.get("value", "") or "",
                action_repr=reprs[index] if index < len(reprs) else "",
                gold_ids=frozenset(str(c["backend_node_id"]) for c in positives),
                candidates=tuple(candidate_elements(positives + negatives, action.get("cleaned_html", ""))),
                previous_actions=tuple(reprs[:index]),
            ))
        return Task(str(record["annotation_id"]), record["confirmed_task"].strip(), record.get("website", ""),
                    tuple(steps), split)
    except (KeyError, TypeError) as error:
        raise Mind2WebDataError(f"Mind2Web record {record.get('annotation_id', '?')}: missing field {error}") from None


def load_split(data_dir: str | Path, split: str) -> list[Task]:
    """All tasks of one split: every ``*.json`` list under ``data_dir/split``, files in name order."""
    if split not in SPLITS:
        raise ValueError(f"unknown Mind2Web split {split!r}; choose from {', '.join(SPLITS)}")
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise Mind2WebDataError(f"{folder}: split folder not found")
    tasks = []
    for path in sorted(folder.glob("*.json")):
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise Mind2WebDataError(f"{path}: expected a JSON list of tasks")
        tasks += [task_from_record(record, split) for record in records]
    return tasks


# --------------------------------------------------------------------------- step-level instances

_CANDIDATE_LINE = re.compile(r"\s*\d+\. <(?P<tag>[\w-]+) bnid=\"(?P<id>\d+)\"(?P<attrs>.*?)/?>\s*$")
_ATTRIBUTE = re.compile(r'([\w-]+)="([^"]*)')
_PREVIOUS_LINE = re.compile(r"\s*\d+\. (.*)$")


def _section(text: str, start: str, end: str) -> str:
    head, found, rest = text.partition(start)
    if not found:
        return ""
    return rest.split(end, 1)[0]


def task_from_instance(instance: dict[str, Any]) -> Task:
    """One step-level instance as a one-step task (the source lists the gold element first)."""
    prompt, meta = instance["input"], instance["metadata"]
    task_match = re.search(r"^Task: (.*)$", prompt, re.MULTILINE)
    if not task_match:
        raise Mind2WebDataError(f"instance {instance.get('instance_id')}: no 'Task:' line")
    previous = [m.group(1).strip() for line in _section(prompt, "Previous actions (already executed):\n",
                                                          "\n\n").splitlines()
                if (m := _PREVIOUS_LINE.match(line))]
    raw_candidates = []
    for line in _section(prompt, "Available candidate elements", "\n\n").splitlines():
        match = _CANDIDATE_LINE.match(line)
        if match:
            attributes = dict(_ATTRIBUTE.findall(match.group("attrs")))
            raw_candidates.append({"backend_node_id": match.group("id"), "tag": match.group("tag"),
                                   "attributes": attributes})
    html = _section(prompt, "```html\n", "```")
    step = Step(op=meta["op"], value=meta.get("value", "") or "",
                action_repr="", gold_ids=frozenset(str(i) for i in meta["target_bnids"]),
                candidates=tuple(candidate_elements(raw_candidates, html)), previous_actions=tuple(previous))
    return Task(instance["instance_id"], task_match.group(1).strip(), meta.get("website", ""), (step,),
                extra={"action_uid": meta.get("action_uid")})


def load_step_instances(path: str | Path) -> list[Task]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    instances = data["instances"] if isinstance(data, dict) else data
    return [replace(task_from_instance(instance), split=STEP_LEVEL_SPLIT) for instance in instances]


# --------------------------------------------------------------------------- shapes


def _shape_error(path: Path, found: str) -> Mind2WebDataError:
    return Mind2WebDataError(f"{found}; Mind2Web evaluation accepts {ACCEPTED_SHAPES}")


def load_tasks(path: str | Path, splits: tuple[str, ...] | list[str] = SPLITS,
               per_split: int | None = None) -> list[Task]:
    """Tasks of any accepted shape; ``per_split`` caps each split (a file is one split).

    A path of another shape raises :class:`Mind2WebDataError` with one line naming the accepted ones.
    """
    path = Path(path)
    if path.is_dir():
        present = [split for split in splits if (path / split).is_dir()]
        if not present:
            raise _shape_error(path, f"a folder without any of the split folders {', '.join(splits)}")
        tasks: list[Task] = []
        for split in present:
            loaded = load_split(path, split)
            tasks += loaded[:per_split] if per_split else loaded
        return tasks
    if not path.is_file():
        raise _shape_error(path, "no such file or folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _shape_error(path, f"not a JSON document ({error.__class__.__name__})") from None
    if isinstance(data, dict) and isinstance(data.get("instances"), list):
        try:
            tasks = load_step_instances(path)
        except (KeyError, TypeError) as error:
            raise _shape_error(path, f"a step-level instance lacks {error}") from None
    elif isinstance(data, list) and data and all(isinstance(r, dict) and "actions" in r and "confirmed_task" in r
                                                   for r in data):
        tasks = [task_from_record(record, path.stem) for record in data]
    else:
        raise _shape_error(path, "neither a task list nor a step-level file")
    return tasks[:per_split] if per_split else tasks
