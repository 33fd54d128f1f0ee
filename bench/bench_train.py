"""Training throughput: non-padding tokens/s with --packing over dynamic padding, same run, same model.

    # training files from GSM8K with the project's own CLIs (see README), then:
    python bench/bench_train.py --train_files data/train/maths/train_annots/lumos_maths_plan_iterative.jsonl \\
        data/train/maths/train_annots/lumos_maths_ground_iterative.jsonl
    # on a GPU, a ~1B LLaMA-architecture model (random init) in bf16, with model FLOPs utilisation:
    python bench/bench_train.py --train_files ... --hidden_size 2048 --num_layers 20 --batch_size 8 \\
        --max_seq_length 2048            # --peak_tflops 989 is the default on an H200 / H100 SXM

Both modes train the same freshly initialised tiny model (its tokenizer trained on the same files)
on the same examples with the same per-device batch of rows, each in its own child process so that
peak memory (CUDA max allocated, or the process's peak RSS on the CPU) is measured per mode. It
prints one JSON line per mode and the packed/padded ratios; the goal is >= 1.5x tokens/s.

On a GPU the weights are float32 and the forward/backward runs under bf16 autocast, attention through
SDPA. Model FLOPs: 6 x (parameters less the input embedding) per non-padding token, plus attention,
12 x layers x hidden x (positions each token attends to); model FLOPs utilisation (``mfu``) divides
their rate by the accelerator's dense bf16 peak: ``--peak_tflops``, by default looked up from the CUDA
device's name (``PEAK_BF16_TFLOPS``: H200 and H100 SXM 989, their NVL/PCIe parts less, A100 312; the
dense figures, not the 2x "with sparsity" ones). No default on the CPU or an unlisted GPU: give the flag.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# Dense bf16 tensor-core peaks (TFLOP/s) from the vendor's data sheets, matched in order against the
# CUDA device name: the first key it contains wins.
PEAK_BF16_TFLOPS = (("H200 NVL", 836.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
                    ("H100", 989.0), ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0))


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a CUDA device by its name (``torch.cuda.get_device_name()``), if listed."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key.lower() in device_name.lower()), None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_files", nargs="+", required=True, help="training JSONL files (docs/FORMAT.md §2)")
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per mode")
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8, help="rows per step (examples, or packed rows)")
    parser.add_argument("--max_seq_length", type=int, default=1024)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=4000)
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the accelerator's dense bf16 peak in TFLOP/s, for model FLOPs utilisation "
                             "(default on CUDA: from the device name, H200 / H100 SXM 989; none on the CPU)")
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)  # set by the parent for its children
    parser.add_argument("--mode", choices=("packed", "padded"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_checkpoint(args: argparse.Namespace, directory: Path) -> Path:
    from lumos.jsonl import SourceRecord, read_records
    from lumos.prompts import render_chat
    from lumos.tiny_model import EOS, TinyModelConfig, build_tiny_checkpoint

    size = TinyModelConfig.scaled(args.hidden_size, args.num_layers, args.vocab_size,
                                  max_position_embeddings=max(2048, args.max_seq_length))
    texts = [render_chat(record.data["messages"], EOS)[0]
             for path in args.train_files for record in read_records(path) if isinstance(record, SourceRecord)]
    return build_tiny_checkpoint(texts, directory / "model", size)


def measure(args: argparse.Namespace) -> dict:
    """One mode in this process: load, tokenise, train warmup + timed steps, report."""
    import datasets
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.data import (PackedRows, PackedRowsCollator, load_conversations, padding_collator,
                            pop_token_count, tokenize_dataset)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, attn_implementation="sdpa").to(device)
    examples = datasets.concatenate_datasets(
        [tokenize_dataset(load_conversations(path), tokenizer, args.max_seq_length) for path in args.train_files])
    if args.mode == "packed":
        dataset, collate = PackedRows(examples, args.max_seq_length), PackedRowsCollator(tokenizer.pad_token_id)
    else:
        dataset, collate = examples, padding_collator(tokenizer)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def batches():
        while True:
            yield from loader

    stream = batches()
    tokens = 0
    context_tokens = 0.0  # sum over tokens of their attention span, for the attention FLOPs
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            if cuda:
                torch.cuda.synchronize()
            start, tokens, context_tokens = time.perf_counter(), 0, 0.0
        batch = next(stream)
        tokens += pop_token_count(batch)
        if "position_ids" in batch:  # packed: positions restart per example (a padded tail counts a little)
            context_tokens += float((batch["position_ids"] + 1).float().sum())
        else:
            mask = batch["attention_mask"]
            context_tokens += float((mask.cumsum(-1) * mask).float().sum())
        batch = {key: value.to(device) for key, value in batch.items()}
        with autocast:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result = {"mode": args.mode, "device": torch.cuda.get_device_name() if cuda else "cpu",
              "rows_per_step": args.batch_size, "steps": args.steps, "tokens": tokens,
              "tokens_per_s": tokens / elapsed, "seconds": elapsed}
    if cuda:
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        import resource
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = model.config
    params = sum(p.numel() for p in model.parameters()) - config.vocab_size * config.hidden_size * (
        0 if config.tie_word_embeddings else 1)  # the input embedding lookup does no FLOPs
    # 6 FLOPs per parameter per token, plus attention: 12 * layers * hidden * attended positions (fwd + bwd).
    flops = 6 * params * tokens + 12 * config.num_hidden_layers * config.hidden_size * context_tokens
    result["params"] = sum(p.numel() for p in model.parameters())
    result["model_tflops_per_s"] = flops / elapsed / 1e12
    peak = args.peak_tflops or (peak_tflops(result["device"]) if cuda else None)
    if peak:
        result["peak_tflops"] = peak
        result["mfu"] = result["model_tflops_per_s"] / peak
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode:
        print(json.dumps(measure(args)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_checkpoint(args, Path(tmp))
        results = {}
        for mode in ("padded", "packed"):
            child = subprocess.run([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                                    "--checkpoint", str(checkpoint), "--mode", mode],
                                   capture_output=True, text=True, check=False)
            if child.returncode != 0:
                print(child.stderr[-4000:], file=sys.stderr)
                return 1
            results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
            print(json.dumps(results[mode]))
    packed, padded = results["packed"], results["padded"]
    memory = "peak_memory_mib" if "peak_memory_mib" in packed else "peak_rss_mib"
    ratio = packed["tokens_per_s"] / padded["tokens_per_s"]
    print(f"packed / padded non-padding tokens/s: {ratio:.2f}x (goal >= 1.5x); "
          f"{memory}: packed {packed[memory]:.0f}, padded {padded[memory]:.0f}")
    if "mfu" in packed:
        print(f"{packed['device']}, {packed['params'] / 1e6:,.0f}M parameters: packed {packed['tokens_per_s']:,.0f} "
              f"tokens/s, {packed['model_tflops_per_s']:.0f} TFLOP/s = MFU {packed['mfu']:.1%} of "
              f"{packed['peak_tflops']:g}; padded {padded['tokens_per_s']:,.0f} tokens/s, MFU {padded['mfu']:.1%}")
    if not math.isfinite(ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
