"""Merge a LoRA adapter into its base model and save a plain Hugging Face checkpoint.

    python train/merge_lora.py --lora_model_name_or_path output/lumos_maths_plan_iterative_lora \\
        --output_dir output/lumos_maths_plan_iterative_merged
    # a different base than the one the adapter names:
    python train/merge_lora.py --lora_model_name_or_path A --base_model_name_or_path meta-llama/Llama-2-7b-hf \\
        --output_dir M

The result loads with ``AutoModelForCausalLM.from_pretrained(M)``; the tokenizer saved beside the
adapter (or the base's) is copied along.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class MergeError(ValueError):
    """An adapter directory or flag that cannot be merged."""


@dataclass
class MergeConfig:
    lora_model_name_or_path: str = field(metadata={"help": "directory with adapter_config.json"})
    output_dir: str = field(metadata={"help": "where the merged checkpoint goes"})
    base_model_name_or_path: str | None = field(default=None, metadata={"help": "defaults to the adapter's base"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "defaults to the adapter dir, "
                                                                       "then the base"})

    def __post_init__(self) -> None:
        if not (Path(self.lora_model_name_or_path) / "adapter_config.json").is_file():
            raise MergeError(f"{self.lora_model_name_or_path} has no adapter_config.json: pass the output_dir "
                             f"of a --use_lora run")


def merge_lora(config: MergeConfig) -> Path:
    """Load base + adapter, fold the LoRA weights in, save model and tokenizer (config.json last)."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.finetune import publish_model_dir

    adapter_dir = Path(config.lora_model_name_or_path)
    base_name = config.base_model_name_or_path or PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer_source = config.tokenizer_name_or_path or (
        str(adapter_dir) if (adapter_dir / "tokenizer_config.json").is_file() else base_name)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)

    output_dir = Path(config.output_dir)
    staging = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed merge
    merged.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    publish_model_dir(staging, output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    try:
        (config,) = HfArgumentParser(MergeConfig).parse_args_into_dataclasses(args=argv)
    except MergeError as error:
        print(f"merge_lora: {error}", file=sys.stderr)
        return 2
    print(f"merged model saved to {merge_lora(config)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
