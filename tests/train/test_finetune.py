"""End-to-end fine-tuning of the embedded tiny model on GSM8K-derived training files (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch



pytestmark = pytest.mark.slow


def _history(output_dir: Path) -> list[tuple[int, float]]:
    return [tuple(item) for item in json.loads((output_dir / "loss_history.json").read_text())]


def test_train_sh_trains_tiny_model_that_lowers_its_loss(gsm8k_train_files, tmp_path, repo_root, tiny_flags):
    """./train.sh -> accelerate launch (CPU, 1 process) -> train/finetune.py on real training files."""
    output_dir = tmp_path / "plan"
    env = {**os.environ, "TASK": "maths", "NUM_GPUS": "0", "MODEL": "tiny",
           "TRAIN_FILE": str(gsm8k_train_files["plan"]), "OUTPUT_DIR": str(output_dir),
           "EXTRA_ARGS": " ".join(tiny_flags[2:] + ["--max_train_steps", "30", "--warmup_ratio", "0"])}
    result = subprocess.run(["./train.sh", "plan", "iterative"], cwd=repo_root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    history = _history(output_dir)
    assert [step for step, _ in history] == list(range(1, 31))
    first, last = (sum(loss for _, loss in part) / len(part) for part in (history[:5], history[-5:]))
    assert last < 0.6 * first, f"loss went from {first:.3f} to only {last:.3f}"
    assert (output_dir / "loss_curve.png").stat().st_size > 1000
    assert list((output_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads((output_dir / "run.json").read_text())["config"]["completed_steps"] == 30

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    ids = tokenizer("<|user|>\nTask: 128 apples\n<|assistant|>\n")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert [tokenizer.decode([i]) for i in ids if tokenizer.decode([i]).strip().isdigit()] == ["1", "2", "8"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))

    # Re-running a finished job resumes from its last checkpoint and trains nothing more.
    again = subprocess.run(["./train.sh", "plan", "iterative"], cwd=repo_root, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "at step 30 " in again.stderr and _history(output_dir) == history


def test_packed_run_lowers_the_loss_on_grounding_file(gsm8k_train_files, tmp_path, tiny_flags, finetune):
    output_dir = tmp_path / "ground"
    result = finetune([*tiny_flags, "--train_file", str(gsm8k_train_files["ground"]),
                       "--packing", "--gradient_checkpointing", "--per_device_train_batch_size", "2",
                       "--max_train_steps", "20", "--output_dir", str(output_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    history = _history(output_dir)
    assert history[-1][0] == 20
    assert sum(loss for _, loss in history[-5:]) < 0.6 * sum(loss for _, loss in history[:5])


def test_killed_run_resumes_where_it_stopped_and_matches_an_uninterrupted_run(
        gsm8k_train_files, tmp_path, repo_root, tiny_flags, finetune):
    flags = [*tiny_flags, "--train_file", str(gsm8k_train_files["plan"]), "--max_train_steps", "16",
             "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
             "--lr_scheduler_type", "linear", "--warmup_ratio", "0.1", "--checkpointing_steps", "4"]
    reference = tmp_path / "reference"
    result = finetune([*flags, "--output_dir", str(reference)])
    assert result.returncode == 0, result.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(repo_root / "train" / "finetune.py"), *flags,
                                "--output_dir", str(killed)], cwd=repo_root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed / "step_4" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "run ended before its first checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = sorted(int(p.name.split("_")[1]) for p in killed.glob("step_*") if p.name.split("_")[1].isdigit())
    assert checkpoints and checkpoints[-1] < 16, "the run finished before it could be killed"
    assert not (killed / "config.json").exists(), "a killed run must not leave a final model"

    result = finetune([*flags, "--output_dir", str(killed), "--resume_from_checkpoint", "latest"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {checkpoints[-1]} " in result.stderr
    resumed, expected = _history(killed), _history(reference)
    assert [step for step, _ in resumed] == list(range(1, 17))
    # Same data order, optimizer and scheduler state: the resumed losses are the uninterrupted ones.
    for (step, loss), (_, reference_loss) in zip(resumed, expected):
        assert loss == pytest.approx(reference_loss, rel=1e-3, abs=1e-4), f"step {step}"


def test_lora_run_merges_into_a_plain_checkpoint(gsm8k_train_files, tmp_path, repo_root, tiny_flags, finetune):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter_dir, merged_dir = tmp_path / "lora", tmp_path / "merged"
    result = finetune([*tiny_flags, "--train_file", str(gsm8k_train_files["ground"]), "--use_lora",
                       "--lora_rank", "8", "--lora_alpha", "16", "--lora_dropout", "0",
                       "--max_train_steps", "6", "--output_dir", str(adapter_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (adapter_dir / "adapter_config.json").is_file() and not (adapter_dir / "config.json").exists()

    merge = subprocess.run([sys.executable, str(repo_root / "train" / "merge_lora.py"),
                            "--lora_model_name_or_path", str(adapter_dir), "--output_dir", str(merged_dir)],
                           cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert merge.returncode == 0, merge.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())

    base = AutoModelForCausalLM.from_pretrained(adapter_dir / "tiny_init").eval()
    ids = torch.tensor([[1, 5, 9, 42, 77, 100]])
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted_logits = PeftModel.from_pretrained(base, adapter_dir).eval()(ids).logits
        merged_logits = merged(ids).logits
    torch.testing.assert_close(merged_logits, adapted_logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3), "the adapter learned nothing"
