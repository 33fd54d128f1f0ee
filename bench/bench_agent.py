"""Batched agent loop vs a baseline shaped like the original evaluation, same tiny model, same questions.

    python bench/bench_agent.py                                  # generated problems, a fresh tiny model
    python bench/bench_agent.py --model output/tiny_plan --data data/eval/gsm/test.jsonl
    python bench/bench_agent.py --model quickstart_out/models/lumos_maths_plan_iterative \
        --grounder quickstart_out/models/lumos_maths_ground_iterative     # the quickstart's trained modules

Ours: planner and grounder loaded once, every unfinished question advanced together (one batched
planning call and one batched grounding call per round). Baseline: one question at a time, and
the model loaded from disk again for every planning and every grounding round, as the released
scripts did. Both run the same prompts, parsing and tools (``lumos.agent``), iterative formulation;
the script prints both wall-clocks and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumos.agent import Agent  # noqa: E402
from lumos.llm.base import Generator, Usage  # noqa: E402


class ReloadingGenerator(Generator):
    """The baseline's model handling: ``from_pretrained`` on every call, then thrown away."""

    def __init__(self, path: str):
        self.path = path
        self.usage = Usage()
        self.eos = "</s>"

    def try_generate(self, prompts, *, stop=None, max_new_tokens=256):
        from lumos.llm.hf_backend import HFGenerator

        model = HFGenerator.from_pretrained(self.path, batch_size=1)
        try:
            return model.try_generate(prompts, stop=stop, max_new_tokens=max_new_tokens)
        finally:
            del model


def questions(data: str | None, n: int) -> list[tuple[str, str]]:
    if data:
        from eval.gsm.benchmark import load

        return [(e.id, e.question) for e in load(Path(data))[:n]]
    from lumos.convert.synthetic import generate_problems

    return [(f"q{i}", p["question"]) for i, p in enumerate(generate_problems(n, seed=0, split="test"))]


def tiny_checkpoint(directory: Path, texts: list[str]) -> str:
    from lumos.prompts import ground_instruction, plan_task_prompt
    from lumos.tiny_model import TinyModelConfig, build_tiny_checkpoint

    corpus = texts + [plan_task_prompt(t) for t in texts] + [ground_instruction("maths", t) for t in texts]
    return str(build_tiny_checkpoint(corpus, directory, TinyModelConfig(vocab_size=1000)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="HF checkpoint used as planner and grounder (default: a fresh tiny LLaMA)")
    parser.add_argument("--grounder", default=None, help="HF checkpoint of the grounding module (default: --model)")
    parser.add_argument("--data", default=None, help="GSM8K test.jsonl (default: generated held-out problems)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--max_steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscribing a shared box)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from lumos.llm.hf_backend import HFGenerator
    from lumos.tools.maths import maths_toolbox

    tasks = questions(args.data, args.n)
    with tempfile.TemporaryDirectory() as scratch, maths_toolbox() as toolbox:
        path = args.model or tiny_checkpoint(Path(scratch) / "tiny", [t for _, t in tasks])

        started = time.perf_counter()
        ground_path = args.grounder or path
        model = HFGenerator.from_pretrained(path, batch_size=args.batch_size)
        grounder = HFGenerator.from_pretrained(ground_path, batch_size=args.batch_size) if args.grounder else model
        agent = Agent(model, grounder, toolbox, domain="maths", max_steps=args.max_steps,
                      max_new_tokens=args.max_new_tokens)
        ours = []
        for start in range(0, len(tasks), args.batch_size):
            ours += agent.run(tasks[start:start + args.batch_size])
        ours_s = time.perf_counter() - started

        started = time.perf_counter()
        reloading = ReloadingGenerator(path)
        reloading_grounder = ReloadingGenerator(ground_path)
        baseline_agent = Agent(reloading, reloading_grounder, toolbox, domain="maths", max_steps=args.max_steps,
                               max_new_tokens=args.max_new_tokens)
        baseline = [baseline_agent.run([task])[0] for task in tasks]
        baseline_s = time.perf_counter() - started

    same = sum(a.status == b.status and a.prediction == b.prediction for a, b in zip(ours, baseline))
    rounds = sum(len(e.steps) for e in ours)
    print(f"questions: {len(tasks)}  model: {args.model or 'fresh tiny LLaMA'}  rounds: {rounds}  "
          f"same outcome: {same}/{len(tasks)}")
    print(f"baseline (one at a time, reload per round): {baseline_s:8.2f} s")
    print(f"batched loop (loaded once):                 {ours_s:8.2f} s")
    print(f"speed-up: {baseline_s / ours_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
