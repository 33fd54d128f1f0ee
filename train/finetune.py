"""Fine-tune a planning or grounding module on Lumos training annotations (docs/FORMAT.md §3).

    # the usual way: through the scripts (DeepSpeed ZeRO-3 on GPUs, plain CPU otherwise)
    ./train.sh plan iterative
    # directly, on the CPU, from the embedded tiny model
    accelerate launch --cpu --num_processes 1 train/finetune.py \\
        --model_name_or_path tiny --train_file data/train/maths/train_annots/lumos_maths_plan_iterative.jsonl \\
        --max_seq_length 512 --per_device_train_batch_size 8 --learning_rate 1e-3 --num_train_epochs 2 \\
        --output_dir output/tiny_plan --packing
    # continue a killed run where its last checkpoint stopped
    accelerate launch ... train/finetune.py <same flags> --resume_from_checkpoint latest
    # QLoRA (4-bit base, LoRA adapters, 8-bit paged AdamW) on one GPU, as open-instruct runs it
    accelerate launch --num_processes 1 train/finetune.py --model_name_or_path meta-llama/Llama-2-7b-hf \\
        --train_file F --use_lora --use_qlora --use_8bit_optimizer --gradient_checkpointing --output_dir out

One recipe read top to bottom: ``setup`` (accelerator, tokenizer, model, data, optimizer), ``train``
(the loop, checkpoints, logging), ``save`` (the final model, written so that a killed run never
leaves a half-written one). ``--model_name_or_path tiny`` builds the embedded LLaMA-architecture
model and trains its tokenizer on the training file (``lumos.tiny_model``); it is saved under
``<output_dir>/tiny_init`` and loaded from there with ``from_pretrained`` like any checkpoint.

Every flag of the original (open-instruct's) finetune.py is accepted. ``--use_qlora``,
``--use_8bit_optimizer`` (bitsandbytes), ``--clip_grad_norm``, ``--config_name``, ``--dataset_name``
and ``--overwrite_cache`` do what they did there; the 8-bit optimizer is used with or without
QLoRA (the original only used it with QLoRA). ``--low_cpu_mem_usage`` is what transformers 5 always
does (said in one line at start-up). transformers 5 has no slow LLaMA tokenizer:
``--use_slow_tokenizer`` encodes with SentencePiece over the checkpoint's ``tokenizer.model`` as the
original's 2023 slow tokenizer did (or, without one, says so and uses the fast tokenizer); label
masks then come from prefix token counts, the original's way.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file by `accelerate launch train/finetune.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train.data import (PackedRows, PackedRowsCollator, TrainingDataError, load_conversations, padding_collator,
                        pop_token_count, tokenize_dataset)

logger = logging.getLogger("lumos.finetune")

TINY = "tiny"
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
TRACKERS = ("tensorboard", "wandb", "comet_ml", "clearml", "all")
CHECKPOINT_PREFIX = "step_"
STATE_FILE = "trainer_state.json"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ConfigError(ValueError):
    """A bad flag or flag combination, rejected before anything is loaded."""


@dataclass
class FinetuneConfig:
    """The original open-instruct flags, plus ``--packing`` and the ``tiny`` model's sizes."""

    # model and tokenizer
    model_name_or_path: str = field(default=TINY, metadata={"help": "checkpoint path or hub name; 'tiny' builds "
                                                            "the embedded small LLaMA model"})
    config_name: str | None = field(default=None, metadata={"help": "model config (path or hub name) if not "
                                                            "the checkpoint's own"})
    tokenizer_name: str | None = field(default=None, metadata={"help": "defaults to model_name_or_path"})
    use_slow_tokenizer: bool = field(default=False, metadata={"help": "encode with SentencePiece over the "
                                                               "checkpoint's tokenizer.model as the original's 2023 "
                                                               "slow tokenizer did; labels by prefix token counts"})
    low_cpu_mem_usage: bool = field(default=False, metadata={"help": "kept for old scripts: transformers 5 always "
                                                             "loads weights without a random init first"})
    use_flash_attn: bool = field(default=False, metadata={"help": "flash-attention 2 (needs flash_attn); "
                                                          "PyTorch SDPA otherwise"})
    gradient_checkpointing: bool = False
    use_lora: bool = False
    use_qlora: bool = field(default=False, metadata={"help": "with --use_lora: load the base in 4-bit NF4 "
                                                     "(bitsandbytes) and train adapters over it; not under DeepSpeed"})
    lora_rank: int = 64
    lora_alpha: float = 16
    lora_dropout: float = 0.1
    tiny_hidden_size: int = field(default=256, metadata={"help": "size of the 'tiny' model"})
    tiny_num_layers: int = 4
    tiny_vocab_size: int = 4000
    # data
    train_file: str | None = field(default=None, metadata={"help": "local JSONL or a hub dataset name"})
    dataset_name: str | None = field(default=None, metadata={"help": "a dataset for datasets.load_dataset (hub "
                                                             "name or local folder) instead of --train_file"})
    dataset_config_name: str | None = None
    max_seq_length: int = 1024
    preprocessing_num_workers: int | None = None
    overwrite_cache: bool = field(default=False, metadata={"help": "tokenise again instead of reusing the "
                                                           "datasets cache"})
    strip_after_eos: bool = field(default=False, metadata={"help": "no newline after an answer's EOS and only "
                                                           "answer + EOS labelled: the ids the released "
                                                           "checkpoints were trained on (2023 slow tokenizer)"})
    packing: bool = field(default=False, metadata={"help": "pack examples into max_seq_length rows "
                                                   "without attention across examples"})
    # optimisation
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    lr_scheduler_type: str = field(default="linear", metadata={"help": f"one of {', '.join(SCHEDULERS)}"})
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    num_train_epochs: int = 2
    max_train_steps: int | None = field(default=None, metadata={"help": "overrides num_train_epochs"})
    clip_grad_norm: float = field(default=-1, metadata={"help": "clip the gradient norm to this (<= 0: no "
                                                        "clipping); under DeepSpeed it sets its gradient_clipping"})
    use_8bit_optimizer: bool = field(default=False, metadata={"help": "bitsandbytes' 8-bit AdamW; not under "
                                                              "DeepSpeed"})
    seed: int = 42
    # outputs
    output_dir: str | None = None
    with_tracking: bool = False
    report_to: str = field(default="tensorboard", metadata={"help": f"one of {', '.join(TRACKERS)}"})
    logging_steps: int = 1
    checkpointing_steps: str | None = field(default=None, metadata={"help": "an integer N (every N steps) "
                                                                    "or 'epoch'"})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "a checkpoint dir, or 'latest' "
                                                                       "for the newest one in output_dir"})

    def __post_init__(self) -> None:
        if not self.train_file and not self.dataset_name:
            raise ConfigError("--train_file is required: a local JSONL file or a hub dataset name "
                              "(or --dataset_name)")
        if self.train_file and self.dataset_name:
            raise ConfigError("give --train_file or --dataset_name, not both")
        if not self.output_dir:
            raise ConfigError("--output_dir is required: where checkpoints and the final model go")
        if self.lr_scheduler_type not in SCHEDULERS:
            raise ConfigError(f"--lr_scheduler_type {self.lr_scheduler_type!r}: choose one of {', '.join(SCHEDULERS)}")
        if self.report_to not in TRACKERS:
            raise ConfigError(f"--report_to {self.report_to!r}: choose one of {', '.join(TRACKERS)}")
        cps = self.checkpointing_steps
        if cps is not None and cps != "epoch" and not (cps.isdigit() and int(cps) > 0):
            raise ConfigError(f"--checkpointing_steps {cps!r}: give a positive integer or 'epoch'")
        for name in ("max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps",
                     "num_train_epochs", "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ConfigError(f"--max_train_steps must be at least 1, got {self.max_train_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.use_qlora and not self.use_lora:
            raise ConfigError("--use_qlora trains LoRA adapters over a 4-bit base: add --use_lora")
        if self.config_name and self.model_name_or_path == TINY:
            raise ConfigError("--config_name does not apply to the 'tiny' model, whose size flags are "
                              "--tiny_hidden_size/--tiny_num_layers/--tiny_vocab_size")
        import importlib.util
        for flag in ("use_qlora", "use_8bit_optimizer"):
            if getattr(self, flag) and importlib.util.find_spec("bitsandbytes") is None:
                raise ConfigError(f"--{flag} needs the bitsandbytes package: pip install bitsandbytes")
        if self.use_flash_attn:
            if importlib.util.find_spec("flash_attn") is None:
                raise ConfigError("--use_flash_attn needs the flash_attn package: pip install flash-attn, "
                                  "or drop the flag to use PyTorch SDPA")


def parse_config(argv: list[str] | None = None) -> FinetuneConfig:
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(FinetuneConfig).parse_args_into_dataclasses(args=argv)
    return config


# --------------------------------------------------------------------------- helpers


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (a ``.tmp`` left by a killed save is not one)."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")
             if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def publish_model_dir(staging: Path, destination: Path) -> None:
    """Move a fully written model from ``staging`` into ``destination``, ``config.json`` last.

    ``config.json`` is the commit marker: it is removed first and moved in only after every
    weight and tokenizer file, so a directory with a config always holds a complete model.
    """
    destination.mkdir(parents=True, exist_ok=True)
    markers = ("config.json", "adapter_config.json")
    for marker in markers:
        (destination / marker).unlink(missing_ok=True)
    files = sorted(staging.iterdir(), key=lambda p: p.name in markers)
    for path in files:
        target = destination / path.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
    staging.rmdir()


def plot_loss_curve(history: list[tuple[int, float]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([step for step, _ in history], [loss for _, loss in history])
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss")
    axis.set_title(path.parent.name)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --------------------------------------------------------------------------- the recipe


class FinetuneRecipe:
    def __init__(self, config: FinetuneConfig):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.completed_steps = 0
        self.epoch = 0
        self.batches_in_epoch = 0  # micro-batches of the current epoch already trained on
        self.loss_history: list[tuple[int, float]] = []

    # ---------------------------------------------------------------- setup

    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        cfg = self.config
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        self.accelerator = Accelerator(
            mixed_precision="bf16" if bf16 else "no",
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
            log_with=cfg.report_to if cfg.with_tracking else None,
            project_dir=str(self.output_dir),
        )
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        set_seed(cfg.seed)
        self._check_against_launcher()
        if cfg.low_cpu_mem_usage:
            logger.info("--low_cpu_mem_usage: transformers 5 always loads weights without a random init first; "
                        "nothing to change")
        self.output_dir.mkdir(parents=True, exist_ok=True)

        conversations = load_conversations(cfg.train_file, cfg.dataset_name, cfg.dataset_config_name)
        model_path = self._tiny_checkpoint(conversations) if cfg.model_name_or_path == TINY else cfg.model_name_or_path
        self.tokenizer = self._load_tokenizer(cfg.tokenizer_name or model_path)
        encoder = self._slow_encoder(cfg.tokenizer_name or model_path) if cfg.use_slow_tokenizer else None
        self.model = self._load_model(model_path, bf16)
        with self.accelerator.main_process_first():
            examples = tokenize_dataset(conversations, encoder or self.tokenizer, cfg.max_seq_length,
                                        cfg.preprocessing_num_workers, prefix_masks=cfg.use_slow_tokenizer,
                                        strip_after_eos=cfg.strip_after_eos, overwrite_cache=cfg.overwrite_cache)
        self.dataloader = self._dataloader(examples)

        # after prepare() each process sees its share of the batches (evened out across processes)
        batches_per_process = math.ceil(len(self.dataloader) / self.accelerator.num_processes)
        steps_per_epoch = math.ceil(batches_per_process / cfg.gradient_accumulation_steps)
        self.max_train_steps = cfg.max_train_steps or cfg.num_train_epochs * steps_per_epoch
        self.num_epochs = math.ceil(self.max_train_steps / steps_per_epoch)
        self.optimizer, self.scheduler = self._optimizer()
        self.model, self.optimizer, self.dataloader, self.scheduler = self.accelerator.prepare(
            self.model, self.optimizer, self.dataloader, self.scheduler)
        if cfg.with_tracking:
            tracked = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in asdict(cfg).items()}
            self.accelerator.init_trackers("tensorboard", tracked)
        if cfg.resume_from_checkpoint:
            self._resume(cfg.resume_from_checkpoint)
        logger.info("%d examples, %d micro-batches per epoch, %d optimizer steps, %d epochs",
                    len(examples), len(self.dataloader), self.max_train_steps, self.num_epochs)

    def _check_against_launcher(self) -> None:
        """Flags that DeepSpeed cannot honour are refused; --clip_grad_norm becomes its gradient_clipping."""
        from accelerate.utils import DistributedType

        cfg = self.config
        if self.accelerator.distributed_type != DistributedType.DEEPSPEED:
            return
        for flag in ("use_qlora", "use_8bit_optimizer"):
            if getattr(cfg, flag):
                raise ConfigError(f"--{flag} does not work under DeepSpeed (it keeps its own optimizer and "
                                  f"weight shards): launch without it, e.g. DEEPSPEED=0 ./train.sh ...")
        ds_config = self.accelerator.state.deepspeed_plugin.deepspeed_config
        if cfg.clip_grad_norm > 0:
            ds_config["gradient_clipping"] = cfg.clip_grad_norm
        logger.info("gradient clipping: DeepSpeed clips at %s (its config's gradient_clipping; 'auto' is 1.0)",
                    ds_config.get("gradient_clipping", "auto"))

    def _tiny_checkpoint(self, conversations) -> str:
        """Build (once; reused on resume) the embedded model with a tokenizer trained on the data."""
        from lumos.prompts import render_chat
        from lumos.tiny_model import EOS, TinyModelConfig, build_tiny_checkpoint

        cfg = self.config
        path = self.output_dir.resolve() / "tiny_init"  # absolute: a LoRA adapter names it as its base
        if self.accelerator.is_main_process and not (path / "config.json").is_file():
            size = TinyModelConfig.scaled(cfg.tiny_hidden_size, cfg.tiny_num_layers, cfg.tiny_vocab_size,
                                          max_position_embeddings=max(2048, cfg.max_seq_length))
            texts = (render_chat(record["messages"], EOS)[0] for record in conversations)
            staging = path.with_name("tiny_init.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            build_tiny_checkpoint(texts, staging, size, seed=cfg.seed)
            publish_model_dir(staging, path)
        self.accelerator.wait_for_everyone()
        return str(path)

    def _load_tokenizer(self, name: str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)  # transformers 5 ignores use_fast=False
        if tokenizer.pad_token is None:  # LLaMA has none; pads are never attended to nor labelled
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        tokenizer.padding_side = "right"
        return tokenizer

    def _slow_encoder(self, name: str):
        """--use_slow_tokenizer: SentencePiece over the checkpoint's tokenizer.model, as the original's
        2023 slow tokenizer encoded (special-token whitespace dropped); None (the fast tokenizer, masks
        from prefix token counts) when there is no tokenizer.model. Said in one line either way."""
        import transformers

        from train.data import SentencePieceChatTokenizer

        encoder = SentencePieceChatTokenizer.beside(self.tokenizer, name)
        if encoder is None:
            logger.info("--use_slow_tokenizer: transformers %s has no slow tokenizer and %s has no tokenizer.model "
                        "for SentencePiece: encoding with %s, label masks from prefix token counts",
                        transformers.__version__, name, type(self.tokenizer).__name__)
        else:
            logger.info("--use_slow_tokenizer: encoding with SentencePiece over %s/tokenizer.model as the 2023 slow "
                        "LLaMA tokenizer did (no whitespace kept next to </s>), label masks from prefix token counts",
                        name)
        return encoder

    def _load_model(self, path: str, bf16: bool):
        import torch
        from transformers import AutoModelForCausalLM

        cfg = self.config
        options = {"attn_implementation": "flash_attention_2" if cfg.use_flash_attn else "sdpa",
                   "dtype": torch.bfloat16 if cfg.use_flash_attn and bf16 else torch.float32}
        if cfg.config_name:
            from transformers import AutoConfig

            options["config"] = AutoConfig.from_pretrained(cfg.config_name)
        if cfg.use_qlora:
            from transformers import BitsAndBytesConfig

            compute = torch.bfloat16 if bf16 else torch.float32
            options.update(dtype=compute, quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_use_double_quant=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute))
            # each process holds a whole quantised copy on its own device (data parallel)
            options["device_map"] = {"": self.accelerator.device}
            if self.accelerator.device.type == "cpu":
                logger.info("--use_qlora on the CPU: bitsandbytes' CPU kernels work but are slow; QLoRA is "
                            "meant for a CUDA GPU")
        model = AutoModelForCausalLM.from_pretrained(path, **options)
        if cfg.use_qlora:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
        elif cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.use_lora:
            from peft import LoraConfig, TaskType, get_peft_model

            if cfg.gradient_checkpointing and not cfg.use_qlora:
                model.enable_input_require_grads()
            lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                              lora_dropout=cfg.lora_dropout, target_modules=LORA_TARGETS)
            model = get_peft_model(model, lora)
            model.print_trainable_parameters()
        return model

    def _dataloader(self, examples):
        from torch.utils.data import DataLoader

        cfg = self.config
        if cfg.packing:
            dataset = PackedRows(examples, cfg.max_seq_length)
            collate = PackedRowsCollator(self.tokenizer.pad_token_id, flatten_batch=cfg.use_flash_attn)
        else:
            dataset, collate = examples, padding_collator(self.tokenizer)
        return DataLoader(dataset, shuffle=True, batch_size=cfg.per_device_train_batch_size, collate_fn=collate)

    def _optimizer(self):
        import torch
        from transformers import get_scheduler

        cfg = self.config
        no_decay = ("bias", "norm")
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not any(k in n.lower() for k in no_decay)],
             "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in named if any(k in n.lower() for k in no_decay)], "weight_decay": 0.0},
        ]
        from accelerate.utils import DistributedType

        if cfg.use_qlora or cfg.use_8bit_optimizer:
            import bitsandbytes

            # paged (optimizer state spills to CPU memory under pressure) where there is a GPU to page from
            optimizer = bitsandbytes.optim.AdamW(groups, lr=cfg.learning_rate,
                                                 optim_bits=8 if cfg.use_8bit_optimizer else 32,
                                                 is_paged=self.accelerator.device.type == "cuda")
        else:
            # DeepSpeed keeps its own (possibly CPU-offloaded) partitions, which the fused kernel cannot take.
            fused = torch.cuda.is_available() and self.accelerator.distributed_type != DistributedType.DEEPSPEED
            optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused)
        # accelerate steps a prepared scheduler once per process per optimizer step.
        total = self.max_train_steps * self.accelerator.num_processes
        scheduler = get_scheduler(cfg.lr_scheduler_type, optimizer=optimizer,
                                  num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
        return optimizer, scheduler

    def _resume(self, where: str) -> None:
        if where == "latest":
            found = checkpoint_dirs(self.output_dir)
            if not found:
                logger.info("no checkpoint in %s yet: starting from step 0", self.output_dir)
                return
            path = found[-1]
        else:
            path = Path(where)
            if not (path / STATE_FILE).is_file():
                raise ConfigError(f"--resume_from_checkpoint {where}: not a finished checkpoint "
                                  f"(no {STATE_FILE}); pass a {CHECKPOINT_PREFIX}N dir or 'latest'")
        self.accelerator.load_state(str(path))
        state = json.loads((path / STATE_FILE).read_text())
        self.completed_steps = state["completed_steps"]
        self.epoch = state["epoch"]
        self.batches_in_epoch = state["batches_in_epoch"]
        self.loss_history = [tuple(item) for item in state["loss_history"]]
        logger.info("resumed from %s at step %d (epoch %d, micro-batch %d)",
                    path, self.completed_steps, self.epoch, self.batches_in_epoch)

    # ---------------------------------------------------------------- train

    def train(self) -> None:
        from lumos.progress import progress_bar

        cfg, accelerator = self.config, self.accelerator
        progress = progress_bar(total=self.max_train_steps, initial=self.completed_steps,
                                disable=not accelerator.is_local_main_process, desc="training")
        window_loss, window_micro, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
        self.model.train()
        if self.completed_steps >= self.max_train_steps:  # resumed from the last checkpoint of a finished run
            self.num_epochs = self.epoch
        for epoch in range(self.epoch, self.num_epochs):
            self.epoch = epoch
            self.dataloader.set_epoch(epoch)
            batches = self.dataloader
            if self.batches_in_epoch:  # resuming mid-epoch: same order, skip what was trained on
                batches = accelerator.skip_first_batches(self.dataloader, self.batches_in_epoch)
            for batch in batches:
                tokens = pop_token_count(batch)
                with accelerator.accumulate(self.model):
                    loss = self.model(**batch, use_cache=False).loss
                    accelerator.backward(loss)
                    # (under DeepSpeed its engine clips, see _check_against_launcher)
                    if cfg.clip_grad_norm > 0 and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                self.batches_in_epoch += 1
                window_loss += loss.detach().float().item()
                window_micro += 1
                window_tokens += tokens * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                self.completed_steps += 1
                progress.update(1)
                if self.completed_steps % cfg.logging_steps == 0 or self.completed_steps == self.max_train_steps:
                    elapsed = time.perf_counter() - window_start
                    loss_value = window_loss / window_micro
                    lr = self.scheduler.get_last_lr()[0]
                    tokens_per_s = window_tokens / max(elapsed, 1e-9)
                    self.loss_history.append((self.completed_steps, loss_value))
                    progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
                    if cfg.with_tracking:
                        accelerator.log({"train_loss": loss_value, "learning_rate": lr,
                                         "tokens_per_second": tokens_per_s}, step=self.completed_steps)
                    window_loss, window_micro, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
                if cfg.checkpointing_steps and cfg.checkpointing_steps.isdigit() \
                        and self.completed_steps % int(cfg.checkpointing_steps) == 0:
                    self.save_checkpoint()
                if self.completed_steps >= self.max_train_steps:
                    break
            if self.completed_steps >= self.max_train_steps:
                break
            self.epoch, self.batches_in_epoch = epoch + 1, 0
            if cfg.checkpointing_steps == "epoch":
                self.save_checkpoint()
        progress.close()

    def save_checkpoint(self) -> Path:
        """Accelerate state (model, optimizer, scheduler, RNG) plus our counters, renamed into place."""
        accelerator = self.accelerator
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{self.completed_steps}"
        staging = final.with_name(final.name + ".tmp")
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        if accelerator.is_main_process:
            state = {"completed_steps": self.completed_steps, "epoch": self.epoch,
                     "batches_in_epoch": self.batches_in_epoch, "loss_history": self.loss_history}
            (staging / STATE_FILE).write_text(json.dumps(state))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
        accelerator.wait_for_everyone()
        logger.info("checkpoint saved to %s", final)
        return final

    # ---------------------------------------------------------------- save

    def save(self) -> None:
        """The final model (or LoRA adapter) and tokenizer, loadable with ``from_pretrained``."""
        from lumos.jsonl import write_run_info

        accelerator = self.accelerator
        if self.config.checkpointing_steps:
            last = checkpoint_dirs(self.output_dir)
            if not last or last[-1].name != f"{CHECKPOINT_PREFIX}{self.completed_steps}":
                self.save_checkpoint()
        staging = self.output_dir / "final.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        state_dict = accelerator.get_state_dict(self.model)  # gathers ZeRO-3 shards
        unwrapped = accelerator.unwrap_model(self.model)
        unwrapped.save_pretrained(str(staging), is_main_process=accelerator.is_main_process,
                                  save_function=accelerator.save, state_dict=state_dict)
        if accelerator.is_main_process:
            self.tokenizer.save_pretrained(str(staging))
            publish_model_dir(staging, self.output_dir)
            if self.loss_history:
                plot_loss_curve(self.loss_history, self.output_dir / "loss_curve.png")
                with open(self.output_dir / "loss_history.json", "w", encoding="utf-8") as handle:
                    json.dump(self.loss_history, handle)
            write_run_info(self.output_dir, {**asdict(self.config), "completed_steps": self.completed_steps},
                           packages=("torch", "transformers", "accelerate", "peft", "deepspeed"))
        accelerator.wait_for_everyone()
        if self.config.with_tracking:
            accelerator.end_training()
        logger.info("final model saved to %s after %d steps", self.output_dir, self.completed_steps)


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as error:
        print(f"finetune: {error}", file=sys.stderr)
        return 2
    recipe = FinetuneRecipe(config)
    try:
        recipe.setup()
    except (ConfigError, TrainingDataError) as error:
        print(f"finetune: {error}", file=sys.stderr)
        return 2
    recipe.train()
    recipe.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
