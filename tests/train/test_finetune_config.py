"""Bad flags and bad script arguments fail up front with one line that says what to do."""

from __future__ import annotations

import os
import subprocess

import pytest

from train.finetune import ConfigError, main, parse_config



@pytest.mark.parametrize("flags, expected", [
    (["--lr_scheduler_type", "sometimes"], "choose one of linear"),
    (["--checkpointing_steps", "often"], "positive integer or 'epoch'"),
    (["--report_to", "paper"], "choose one of tensorboard"),
    (["--warmup_ratio", "1.5"], "warmup_ratio"),
])
def test_bad_flags_are_rejected_at_parse_time(flags, expected, tmp_path):
    base = ["--train_file", "x.jsonl", "--output_dir", str(tmp_path)]
    with pytest.raises(ConfigError, match=expected):
        parse_config(base + flags)


def test_original_flags_parse(tmp_path):
    config = parse_config([
        "--model_name_or_path", "m", "--tokenizer_name", "m", "--use_slow_tokenizer", "--train_file", "f.jsonl",
        "--max_seq_length", "1024", "--preprocessing_num_workers", "16", "--per_device_train_batch_size", "1",
        "--gradient_accumulation_steps", "16", "--learning_rate", "2e-5", "--lr_scheduler_type", "linear",
        "--warmup_ratio", "0.03", "--weight_decay", "0.", "--num_train_epochs", "2", "--output_dir", str(tmp_path),
        "--with_tracking", "--report_to", "tensorboard", "--logging_steps", "1", "--checkpointing_steps", "epoch",
        "--seed", "1", "--use_lora", "--lora_rank", "64", "--lora_alpha", "16", "--lora_dropout", "0.1",
        "--gradient_checkpointing", "--packing", "--max_train_steps", "9"])
    assert config.gradient_accumulation_steps == 16 and config.packing and config.max_train_steps == 9


def test_missing_train_file_is_one_line_error(tmp_path, capsys):
    assert main(["--train_file", str(tmp_path / "absent.jsonl"), "--output_dir", str(tmp_path / "o")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "process_for_train" in message


@pytest.mark.parametrize("args, env, expected", [
    (["plan", "sometimes"], {}, "use ./train.sh plan|ground iterative|onetime"),
    (["act", "iterative"], {}, "use ./train.sh plan|ground iterative|onetime"),
    (["plan"], {}, "usage"),
    (["plan", "iterative"], {"TASK": "chemistry"}, "unknown TASK"),
    (["ground", "iterative"], {"TASK": "maths", "DATA_DIR": "no/such/dir"}, "python -m data.process_for_train"),
])
def test_train_sh_bad_arguments(args, env, expected, repo_root):
    result = subprocess.run(["./train.sh", *args], cwd=repo_root, env={**os.environ, "NUM_GPUS": "0", **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
