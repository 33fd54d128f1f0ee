"""Batched generation vs one prompt at a time, same tiny random LLaMA, same run.

    python bench/bench_generate.py                       # 64 prompts, 32 new tokens, batches of 16
    python bench/bench_generate.py --n 128 --hidden_size 512 --layers 8 --device cuda

Prints prompts/s of both and the ratio; checks that both produced the same text.
"""

from __future__ import annotations

import argparse
import random
import time

from lumos.llm.hf_backend import HFGenerator
from lumos.tiny_model import byte_level_tokenizer, random_tiny_llama

NAMES = ["Olivia", "Liam", "Noah", "Emma", "Ava", "Mateo", "Aiko", "Ravi"]
ITEMS = ["apples", "pencils", "stamps", "marbles", "cookies", "books"]


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """GSM8K-like questions of varied length, rendered like a planner prompt."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        steps = " ".join(f"Then {rng.choice(NAMES)} gives away {rng.randint(1, 20)} {rng.choice(ITEMS)}."
                         for _ in range(rng.randint(1, 6)))
        task = f"{rng.choice(NAMES)} has {rng.randint(10, 99)} {rng.choice(ITEMS)}. {steps} How many are left?"
        prompts.append(f"<|user|>\nPlease provide a reasonable subgoal-based plan to solve the given task.\n"
                       f"Task: {task}; Initial Environment Description: None.\n<|assistant|>\n")
    return prompts


def timed(function) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two sides this often; keep the best")
    args = parser.parse_args()

    import torch

    prompts = make_prompts(args.n)
    tokenizer = byte_level_tokenizer(make_prompts(500, seed=1), vocab_size=512)
    model = random_tiny_llama(tokenizer, hidden_size=args.hidden_size, layers=args.layers,
                              heads=max(1, args.hidden_size // 64)).to(args.device)
    generator = HFGenerator(model, tokenizer, batch_size=args.batch_size)
    # stop=[]: every prompt generates max_new_tokens, so both sides do the same amount of work
    generator.generate(prompts[:2], stop=[], max_new_tokens=4)  # warm-up
    single_s = batched_s = float("inf")
    for _ in range(args.repeats):  # alternating, so load from other processes hits both sides alike
        seconds, single = timed(lambda: [generator.generate([p], stop=[], max_new_tokens=args.max_new_tokens)[0]
                                         for p in prompts])
        single_s = min(single_s, seconds)
        seconds, batched = timed(lambda: generator.generate(prompts, stop=[], max_new_tokens=args.max_new_tokens))
        batched_s = min(batched_s, seconds)
    same = sum(a == b for a, b in zip(single, batched))
    print(f"model: LLaMA hidden={args.hidden_size} layers={args.layers} vocab={len(tokenizer)} "
          f"params={sum(p.numel() for p in model.parameters()) / 1e6:.1f}M device={args.device} "
          f"threads={torch.get_num_threads()}")
    print(f"{args.n} prompts, {args.max_new_tokens} new tokens each")
    print(f"one at a time (baseline): {single_s:7.2f} s  {args.n / single_s:8.1f} prompts/s")
    print(f"batched (batch {args.batch_size:3d}):     {batched_s:7.2f} s  {args.n / batched_s:8.1f} prompts/s")
    print(f"speed-up: {single_s / batched_s:.1f}x; identical outputs: {same}/{args.n}")


if __name__ == "__main__":
    main()
