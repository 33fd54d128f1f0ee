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


@pytest.mark.parametrize("deepspeed, expected, absent", [
    ("1", ["--use_deepspeed", "--deepspeed_config_file", "--num_processes 2"], ["--multi_gpu"]),
    ("0", ["--multi_gpu", "--num_processes 2", "--mixed_precision bf16"], ["--use_deepspeed"]),
])
def test_gpu_launch_lines(deepspeed, expected, absent, gsm8k_train_files, repo_root, tmp_path):
    """What ./train.sh hands accelerate on 2 GPUs, with DeepSpeed (default) or DEEPSPEED=0 (QLoRA, 8-bit AdamW)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "accelerate"  # records its arguments instead of launching
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" > {tmp_path / "launched"}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NUM_GPUS": "2", "DEEPSPEED": deepspeed,
           "MODEL": "tiny", "TASK": "maths", "TRAIN_FILE": str(gsm8k_train_files["plan"]),
           "OUTPUT_DIR": str(tmp_path / "out"), "EXTRA_ARGS": "--use_lora --use_qlora",
           "TOTAL_BATCH_SIZE": "16", "BATCH_SIZE_PER_DEVICE": "2"}
    result = subprocess.run(["./train.sh", "plan", "iterative"], cwd=repo_root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    launched = (tmp_path / "launched").read_text()
    for text in expected + ["train/finetune.py", "--gradient_accumulation_steps 4", "--use_lora --use_qlora"]:
        assert text in launched, launched
    for text in absent:
        assert text not in launched, launched


def test_deepspeed_refuses_qlora_and_takes_the_clip_norm(tmp_path):
    """Under DeepSpeed --use_qlora/--use_8bit_optimizer are refused in one line before any load, and
    --clip_grad_norm becomes DeepSpeed's gradient_clipping (its engine clips, not our loop)."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from train.finetune import FinetuneRecipe

    base = ["--train_file", "x.jsonl", "--output_dir", str(tmp_path)]
    for flags in (["--use_lora", "--use_qlora"], ["--use_8bit_optimizer"]):
        recipe = FinetuneRecipe(parse_config(base + flags))
        ds_config = {"gradient_clipping": "auto"}
        recipe.accelerator = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, state=SimpleNamespace(
            deepspeed_plugin=SimpleNamespace(deepspeed_config=ds_config)))
        with pytest.raises(ConfigError, match="does not work under DeepSpeed.*DEEPSPEED=0"):
            recipe._check_against_launcher()
    recipe = FinetuneRecipe(parse_config(base + ["--clip_grad_norm", "0.5"]))
    recipe.accelerator = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED, state=SimpleNamespace(
        deepspeed_plugin=SimpleNamespace(deepspeed_config=ds_config)))
    recipe._check_against_launcher()
    assert ds_config["gradient_clipping"] == 0.5
