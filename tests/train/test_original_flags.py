"""The original finetune.py flags: accepted, and either done (QLoRA, 8-bit AdamW, clipping, config and
dataset names, cache) or said in one line to be what transformers 5 always does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from train.finetune import ConfigError, parse_config

ORIGINAL_SCRIPT_FLAGS = [  # scripts/train/finetune_llama2_plan_iterative.sh of the original, cluster paths aside
    "--model_name_or_path", "m", "--use_flash_attn", "--tokenizer_name", "m", "--use_slow_tokenizer",
    "--train_file", "data/train/maths/train_annots/lumos_maths_plan_iterative.jsonl", "--max_seq_length", "1024",
    "--preprocessing_num_workers", "16", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "32",
    "--learning_rate", "2e-5", "--lr_scheduler_type", "linear", "--warmup_ratio", "0.03", "--weight_decay", "0.",
    "--num_train_epochs", "2", "--with_tracking", "--report_to", "tensorboard", "--logging_steps", "1"]


def test_every_flag_of_the_original_parses(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # flash_attn is not installed on CPU machines
                        lambda name, *a: object() if name == "flash_attn" else real_find_spec(name, *a))
    config = parse_config(ORIGINAL_SCRIPT_FLAGS + [
        "--output_dir", str(tmp_path), "--config_name", "c", "--low_cpu_mem_usage", "--overwrite_cache",
        "--clip_grad_norm", "1.0", "--use_lora", "--use_qlora", "--use_8bit_optimizer", "--lora_rank", "64",
        "--lora_alpha", "16", "--lora_dropout", "0.1", "--gradient_checkpointing", "--seed", "1",
        "--checkpointing_steps", "epoch", "--max_train_steps", "9", "--resume_from_checkpoint", "x",
        "--dataset_config_name", "default"])
    assert config.use_qlora and config.use_8bit_optimizer and config.clip_grad_norm == 1.0
    assert config.low_cpu_mem_usage and config.overwrite_cache and config.use_slow_tokenizer
    assert config.config_name == "c" and config.gradient_accumulation_steps == 32
    assert parse_config(["--dataset_name", "ai2lumos/lumos_maths_plan_iterative",
                         "--output_dir", str(tmp_path)]).dataset_name == "ai2lumos/lumos_maths_plan_iterative"


@pytest.mark.parametrize("flags, expected", [
    (["--use_qlora"], "add --use_lora"),
    (["--dataset_name", "d"], "not both"),
    (["--model_name_or_path", "tiny", "--config_name", "c"], "tiny"),
])
def test_bad_combinations_are_refused_at_parse_time(flags, expected, tmp_path):
    with pytest.raises(ConfigError, match=expected):
        parse_config(["--train_file", "x.jsonl", "--output_dir", str(tmp_path), *flags])


def test_missing_bitsandbytes_is_one_line_naming_the_install(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="pip install bitsandbytes"):
        parse_config(["--train_file", "x.jsonl", "--output_dir", str(tmp_path), "--use_8bit_optimizer"])


# --------------------------------------------------------------------------- real runs (CPU, tiny model)

pytest.importorskip("bitsandbytes")


def _losses(output_dir: Path) -> list[float]:
    return [loss for _, loss in json.loads((output_dir / "loss_history.json").read_text())]


@pytest.fixture(scope="module")
def qlora_run(gsm8k_train_files, tmp_path_factory, tiny_flags, finetune):
    output_dir = tmp_path_factory.mktemp("qlora") / "out"
    result = finetune([*tiny_flags, "--train_file", str(gsm8k_train_files["ground"]), "--use_lora", "--use_qlora",
                       "--use_8bit_optimizer", "--lora_rank", "8", "--lora_alpha", "16", "--lora_dropout", "0",
                       "--gradient_checkpointing", "--clip_grad_norm", "1.0", "--per_device_train_batch_size", "4",
                       "--max_train_steps", "6", "--output_dir", str(output_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result


@pytest.mark.slow
def test_qlora_trains_adapters_over_a_4bit_base(qlora_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    output_dir, result = qlora_run
    assert "--use_qlora on the CPU" in result.stderr  # said once, at start-up
    losses = _losses(output_dir)
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (output_dir / "adapter_config.json").is_file() and not (output_dir / "config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(output_dir / "tiny_init").eval()
    ids = torch.tensor([[1, 5, 9, 42, 77, 100]])
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, output_dir).eval()(ids).logits
    assert not torch.allclose(adapted, base_logits, atol=1e-3), "the adapters learned nothing"


@pytest.mark.slow
def test_qlora_adapters_merge_into_a_full_precision_checkpoint(qlora_run, repo_root, tmp_path):
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    output_dir, _ = qlora_run
    merge = subprocess.run([sys.executable, str(repo_root / "train" / "merge_lora.py"),
                            "--lora_model_name_or_path", str(output_dir), "--output_dir", str(tmp_path / "merged")],
                           cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert merge.returncode == 0, merge.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert merged.dtype == torch.float32 and not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(output_dir / "tiny_init").eval()
    ids = torch.tensor([[1, 5, 9, 42, 77, 100]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-3)


def _tensor_dtypes(state) -> set:
    if isinstance(state, torch.Tensor):
        return {state.dtype}
    if isinstance(state, dict):
        return set().union(*(_tensor_dtypes(value) for value in state.values()))
    return set()


def _max_weight_change(before: Path, after: Path) -> float:
    from safetensors.torch import load_file

    start, end = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    return max((end[name].float() - start[name].float()).abs().max().item() for name in end)


@pytest.mark.slow
def test_8bit_adamw_clipping_config_and_dataset_names(qlora_run, gsm8k_train_files, tmp_path, finetune):
    """A full fine-tune of a saved checkpoint through --dataset_name (a local folder) and --config_name,
    with bitsandbytes' 8-bit AdamW; --clip_grad_norm 1e-9 all but freezes the weights, no clipping moves them."""
    base = qlora_run[0] / "tiny_init"
    dataset_dir = tmp_path / "dataset"
    dataset_dir.mkdir()
    shutil.copy(gsm8k_train_files["plan"], dataset_dir / "train.jsonl")
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = json.loads((base / "config.json").read_text())
    config["rms_norm_eps"] = 1e-3
    (config_dir / "config.json").write_text(json.dumps(config))
    common = ["--model_name_or_path", str(base), "--dataset_name", str(dataset_dir), "--config_name", str(config_dir),
              "--use_8bit_optimizer", "--use_slow_tokenizer", "--low_cpu_mem_usage", "--overwrite_cache",
              "--max_seq_length", "384", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant",
              "--per_device_train_batch_size", "4", "--max_train_steps", "2", "--checkpointing_steps", "2"]

    clipped, free = tmp_path / "clipped", tmp_path / "free"
    result = finetune([*common, "--clip_grad_norm", "1e-9", "--output_dir", str(clipped)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--low_cpu_mem_usage: transformers 5 always" in result.stderr
    assert "--use_slow_tokenizer: transformers 5" in result.stderr and "has no tokenizer.model" in result.stderr
    assert json.loads((clipped / "config.json").read_text())["rms_norm_eps"] == 1e-3
    optimizer_state = torch.load(clipped / "step_2" / "optimizer.bin", weights_only=False)["state"]
    assert torch.uint8 in _tensor_dtypes(optimizer_state), "no 8-bit optimizer state"
    assert _max_weight_change(base, clipped) < 2e-4

    result = finetune([*common, "--output_dir", str(free)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert _max_weight_change(base, free) > 1e-3


@pytest.mark.slow
def test_slow_tokenizer_encodes_with_sentencepiece(llama2_tokenizer_folder, gsm8k_train_files, tmp_path, finetune):
    """--use_slow_tokenizer on a checkpoint that ships tokenizer.model: SentencePiece encodes, said in one line."""
    from transformers import LlamaConfig, LlamaForCausalLM

    checkpoint = tmp_path / "llama"
    shutil.copytree(llama2_tokenizer_folder, checkpoint)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, bos_token_id=1,
                                 eos_token_id=2)).save_pretrained(checkpoint)
    result = finetune(["--model_name_or_path", str(checkpoint), "--train_file", str(gsm8k_train_files["ground"]),
                       "--use_slow_tokenizer", "--max_seq_length", "384", "--per_device_train_batch_size", "4",
                       "--learning_rate", "1e-3", "--max_train_steps", "2", "--output_dir", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--use_slow_tokenizer: encoding with SentencePiece over" in result.stderr
    assert len(_losses(tmp_path / "out")) == 2
