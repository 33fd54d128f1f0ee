"""Training files made from real GSM8K records (../shared/data/gsm8k) for the training tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lumos.format import parse_plan
from lumos.prompts import ground_messages, plan_messages

RECORDS = 200
_CALC = re.compile(r"<<([^=<>]+)=([^<>]+)>>")

# Flags that make the embedded model small enough for a few dozen CPU steps in seconds.
TINY_FLAGS = ["--model_name_or_path", "tiny", "--tiny_hidden_size", "64", "--tiny_num_layers", "2",
              "--tiny_vocab_size", "800", "--max_seq_length", "384", "--learning_rate", "3e-3",
              "--lr_scheduler_type", "constant", "--seed", "7"]


def gsm8k_plan_text(answer: str) -> str | None:
    """Socratic GSM8K answer -> subgoal plan text of FORMAT.md §1 (None when a step has no calculation)."""
    steps = [line for line in answer.split("\n") if line.strip() and not line.startswith("####")]
    blocks, variable = [], 0
    for k, step in enumerate(steps, start=1):
        question, _, explanation = step.partition(" ** ")
        calls = _CALC.findall(explanation)
        if not explanation or not calls:
            return None
        lines = [f"Subgoal {k}: {question.strip()}"]
        for j, (expression, result) in enumerate(calls, start=1):
            variable += 1
            target = "Output" if k == len(steps) and j == len(calls) else f"R{variable}"
            lines.append(f"Action {k}-{j}: {target} = Calculator({expression}) = {result}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def write_gsm8k_training_files(source: Path, out_dir: Path, records: int = RECORDS) -> dict[str, Path]:
    """lumos_maths_{plan,ground}_iterative.jsonl made with the project's parser and conversation builders."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {"plan": [], "ground": []}
    with open(source, encoding="utf-8") as handle:
        for i, line in zip(range(records), handle):
            record = json.loads(line)
            text = gsm8k_plan_text(record["answer"])
            if text is None:
                continue
            plan = parse_plan(text)
            for module, build in (("plan", plan_messages), ("ground", ground_messages)):
                messages = build(record["question"], plan, "maths", "iterative")
                rows[module].append({"dataset": "maths", "id": f"maths_{i}", "messages": messages})
    paths = {}
    for module, items in rows.items():
        paths[module] = out_dir / f"lumos_maths_{module}_iterative.jsonl"
        paths[module].write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return paths


@pytest.fixture(scope="session")
def gsm8k_train_files(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    return write_gsm8k_training_files(shared_data / "gsm8k" / "train_socratic.jsonl",
                                      tmp_path_factory.mktemp("gsm8k_train"))


def run_finetune(args: list[str], *, launcher: str = "python", timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train/finetune.py as the scripts do (``accelerate launch`` on one CPU process) or plainly."""
    repo = Path(__file__).resolve().parents[2]
    script = str(repo / "train" / "finetune.py")
    if launcher == "accelerate":
        command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", script, *args]
    else:
        command = [sys.executable, script, *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout)
