"""The agent loop against the original evaluation's shape, and the served loop without round barriers.

    python bench/bench_agent.py                                  # generated problems, a fresh tiny model
    python bench/bench_agent.py --model quickstart_out/models/lumos_maths_plan_iterative \
        --grounder quickstart_out/models/lumos_maths_ground_iterative \
        --data ../shared/data/gsm8k/test_socratic.jsonl            # the quickstart's trained modules, GSM8K
    python bench/bench_agent.py --parts served ...               # only the served comparison

Part ``hf`` (local transformers models, same questions, iterative formulation, same prompts,
parsing and tools: ``lumos.agent``), four lines:

* **original shape**: what the released evaluation did each round: the module loaded from disk
  again, then every unfinished question generated in static batches of ``--eval_batch_size`` in
  input order (left-padded to the batch's longest prompt), each batch running until every row has
  stopped (rows that stopped earlier are still computed, as with its batch-level stop criterion);
* **without KV cache**: models loaded once, prompts sorted by length into sub-batches of similar
  lengths, each row stopping on its own, whole conversations prefilled every round
  (``HFGenerator(kv_cache_tokens=0)``);
* **ours batch by batch**: with the KV caches, but ``--eval_batch_size`` tasks at a time, each batch
  running as long as its slowest task (how ``run_eval`` ran the agent before ``--active_tasks``);
* **ours**: as ``run_eval`` runs it: key/value caches kept across rounds (``lumos.llm.kv_cache``: a
  round prefills only the new turn), every task handed to the loop with at most ``--active_tasks``
  in progress (a task that ends hands its place to the next), each call one decoding loop with
  continuous batching in ``--slots`` rows (a row that stops hands its slot to the next prompt).

``--slots`` sets the rows ours decodes together (default ``--eval_batch_size``, the original's rows
per batch). Every line prints its work: forward passes, token rows computed (rows x new columns,
padding included) and attention cells (token rows x key columns); the ratios of these between ours
and the original shape bound the speed-up a CPU can show (see bench/README.md).

``--one_at_a_time`` adds the earlier baseline: one question at a time, the model reloaded every round.

On a GPU (``--device cuda --dtype bfloat16``, what ``HFGenerator`` picks there anyway), ``--widen 2048,20``
runs every line with a ~1B-parameter LLaMA-architecture model that computes exactly what ``--model`` /
``--grounder`` compute: each module embedded in a 2,048-wide, 20-layer LLaMA (heads of 64 dimensions, MLP
8/3 of the width; the extra width carries zeros, the extra layers add nothing to the residual stream; see
``widen_checkpoint``). So the questions, replies, rounds and prompt lengths are those of the trained
modules, and every forward pass costs what a 1B model's costs (the same matrix shapes; only the
vocabulary stays the modules' own). A random 1B model would answer noise: every task would end with a
parse error after its first round, and the comparison would measure one round of prefill instead of the
multi-round loop. ``--kv_cache_tokens`` sizes ours' prefix cache (default: what 2 GiB hold, ~13k tokens
of that 1B model, which would evict live conversations of 64 questions).

Part ``served``: the replies ours produced, served again by ``python -m lumos.llm.serve``'s server
(``ScriptedGenerator.exact``) with a latency model that grows with the tokens generated and varies
per request (``--latency_s``, ``--latency_per_token_s``, ``--latency_jitter``), one server for the
planner and one for the grounder, talked to through ``OpenAIGenerator`` (``--concurrency`` requests
in flight): the round-based loop (``Agent(barrier=True)``) vs the loop without round barriers.

Every line runs the same questions; the script checks that outcomes and trajectories agree and
prints wall-clocks, prefill tokens per question and the ratios, all measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumos.agent import Agent  # noqa: E402
from lumos.llm.base import GenerationError, Generator, Usage  # noqa: E402


LOAD: dict[str, str] = {}  # device / dtype for every from_pretrained of the benchmark (--device, --dtype)


class OriginalShapeGenerator(Generator):
    """The released evaluation's model handling: ``from_pretrained`` on every round, then every prompt of
    the round in static batches of ``eval_batch_size``, input order, batch-level stopping; thrown away."""

    def __init__(self, path: str, eval_batch_size: int):
        self.path = path
        self.eval_batch_size = eval_batch_size
        self.usage = Usage()
        self.eos = "</s>"

    def try_generate(self, prompts, *, stop=None, max_new_tokens=256):
        from lumos.llm.hf_backend import HFGenerator

        model = HFGenerator.from_pretrained(self.path, batch_size=self.eval_batch_size, kv_cache_tokens=0, **LOAD)
        count_passes(model.model)
        try:
            stop = ["\n"] if stop is None else list(stop)
            encoded = model.encode(prompts)
            replies: list[str | GenerationError] = []
            for start in range(0, len(encoded), self.eval_batch_size):
                # One generate call per static batch: it ends when its last row has stopped.
                replies += model._generate_batch(encoded[start:start + self.eval_batch_size], stop, max_new_tokens)
            self.usage.prompt_tokens += model.usage.prompt_tokens
            self.usage.completion_tokens += model.usage.completion_tokens
            self.usage.requests += model.usage.requests
            return replies
        finally:
            del model


class Recording(Generator):
    """Passes calls through and keeps every ``prompt -> reply`` (the served part replays them)."""

    def __init__(self, inner: Generator, table: dict[str, str]):
        self.inner = inner
        self.table = table
        self.usage = inner.usage
        self.eos = getattr(inner, "eos", "</s>")

    def try_generate(self, prompts, *, stop=None, max_new_tokens=256):
        replies = self.inner.try_generate(prompts, stop=stop, max_new_tokens=max_new_tokens)
        self.table.update((p, r) for p, r in zip(prompts, replies) if isinstance(r, str))
        return replies


def questions(data: str | None, n: int) -> list[tuple[str, str]]:
    if data:
        from eval.gsm.benchmark import load

        return [(e.id, e.question) for e in load(Path(data))[:n]]
    from lumos.synthetic import generate_problems

    return [(f"q{i}", p["question"]) for i, p in enumerate(generate_problems(n, seed=0, split="test"))]


def tiny_checkpoint(directory: Path, texts: list[str]) -> str:
    from lumos.prompts import ground_instruction, plan_task_prompt
    from lumos.tiny_model import TinyModelConfig, build_tiny_checkpoint

    corpus = texts + [plan_task_prompt(t) for t in texts] + [ground_instruction("maths", t) for t in texts]
    return str(build_tiny_checkpoint(corpus, directory, TinyModelConfig(vocab_size=1000)))


def widen_checkpoint(source: str, target: Path, hidden_size: int, num_layers: int, *, device: str = "cpu",
                     dtype: str = "float32", head_dim: int = 64, seed: int = 0) -> str:
    """Save to ``target`` a ``hidden_size``-wide, ``num_layers``-deep LLaMA that computes what the LLaMA at
    ``source`` computes (same tokenizer, same logits up to rounding), at the bigger model's cost per pass.

    The small model sits in the first dimensions of the residual stream and the first layers; everything
    that reads the stream may hold random values in the other columns (they meet zeros), but everything
    that writes to it (embeddings, attention output, MLP down projection) is zero outside the small
    model's part, so the extra width stays zero and the extra layers add nothing. RMSNorm averages over
    the whole width: its weights are scaled by sqrt(small / big width) and its epsilon by small / big
    width. Each small head goes into a bigger head, its dimensions placed where the bigger head's rotary
    embedding turns them at the same frequencies (dimension i of the first half at i * ratio, of the second
    half at head_dim / 2 + i * ratio), queries scaled by sqrt(ratio) for the 1 / sqrt(head_dim) of SDPA.
    About 40% of the weights are zero (the writing matrices), the rest random; matrix products cost the
    same either way (a GPU may clock a little higher on zeros).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    small = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    c = small.config
    small_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    heads = hidden_size // head_dim
    ratio = head_dim // small_head if small_head else 0
    intermediate = hidden_size * 8 // 3 // 8 * 8  # as lumos.tiny_model.TinyModelConfig.scaled
    problems = [text for ok, text in [
        (c.model_type == "llama", f"a LLaMA model, not {c.model_type}"),
        (not getattr(c, "attention_bias", False) and not getattr(c, "mlp_bias", False), "no biases"),
        (c.num_attention_heads == c.num_key_value_heads, "as many key/value heads as heads"),
        (hidden_size % head_dim == 0 and heads >= c.num_attention_heads, f"at least {c.num_attention_heads} heads"),
        (ratio >= 1 and head_dim % small_head == 0 and small_head % 2 == 0, f"head_dim a multiple of {small_head}"),
        (hidden_size >= c.hidden_size and intermediate >= c.intermediate_size, "a width at least the model's"),
        (num_layers >= c.num_hidden_layers, f"at least {c.num_hidden_layers} layers")] if not ok]
    if problems:
        raise ValueError(f"cannot widen {source} to {hidden_size},{num_layers}: needs " + "; ".join(problems))
    config = type(c).from_dict({**c.to_dict(), "hidden_size": hidden_size, "intermediate_size": intermediate,
                                "num_hidden_layers": num_layers, "num_attention_heads": heads,
                                "num_key_value_heads": heads, "head_dim": head_dim,
                                "rms_norm_eps": c.rms_norm_eps * c.hidden_size / hidden_size})
    torch.manual_seed(seed)
    with torch.device(device):
        big = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    w, h, i_small = c.hidden_size, c.num_attention_heads, c.intermediate_size
    scale = (w / hidden_size) ** 0.5
    half = small_head // 2
    within = torch.tensor([k * ratio for k in range(half)] + [head_dim // 2 + k * ratio for k in range(half)])
    rows = torch.cat([head * head_dim + within for head in range(h)]).to(device)  # small head dims -> big rows
    with torch.no_grad():
        def norm(big_norm, small_norm) -> None:
            big_norm.weight.zero_()
            big_norm.weight[:w] = small_norm.weight.to(device) * scale

        big.model.embed_tokens.weight.zero_()
        big.model.embed_tokens.weight[:, :w] = small.model.embed_tokens.weight.to(device)
        if not config.tie_word_embeddings:
            big.lm_head.weight[:, :w] = small.lm_head.weight.to(device)
        norm(big.model.norm, small.model.norm)
        for index, layer in enumerate(big.model.layers):
            attention, mlp = layer.self_attn, layer.mlp
            attention.o_proj.weight.zero_()
            mlp.down_proj.weight.zero_()
            if index >= c.num_hidden_layers:
                continue  # adds nothing to the residual stream
            source_layer = small.model.layers[index]
            norm(layer.input_layernorm, source_layer.input_layernorm)
            norm(layer.post_attention_layernorm, source_layer.post_attention_layernorm)
            for name, factor in (("q_proj", ratio ** 0.5), ("k_proj", 1.0), ("v_proj", 1.0)):
                weight = getattr(attention, name).weight
                weight[: h * head_dim].zero_()  # the embedded heads' other dimensions add nothing to q.k
                weight[rows, :w] = getattr(source_layer.self_attn, name).weight.to(device) * factor
            attention.o_proj.weight[:w, rows] = source_layer.self_attn.o_proj.weight.to(device)
            mlp.gate_proj.weight[:i_small, :w] = source_layer.mlp.gate_proj.weight.to(device)
            mlp.up_proj.weight[:i_small, :w] = source_layer.mlp.up_proj.weight.to(device)
            mlp.down_proj.weight[:w, :i_small] = source_layer.mlp.down_proj.weight.to(device)
    big = big.to(getattr(torch, dtype))
    target.mkdir(parents=True, exist_ok=True)
    big.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


PASSES = [0, 0, 0]  # forward passes, token rows computed (rows x new columns), attention cells (x key columns)


def count_passes(model) -> None:
    """Count in ``PASSES`` the forward passes of ``model`` (one per prefill or decoding step), the token rows
    each computes (padding included) and its attention cells (token rows x key columns, masked ones included)."""

    def count(_module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        rows = ids.numel()
        PASSES[0] += 1
        PASSES[1] += rows
        PASSES[2] += rows * (mask.shape[-1] if mask is not None else ids.shape[-1])

    model.register_forward_pre_hook(count, with_kwargs=True)


def trajectory(episode) -> tuple:
    """What two runs must agree on: outcome and every reply, subgoal, action and result."""
    return (episode.status, episode.prediction, episode.error,
            tuple((s.plan_reply, s.subgoal, s.grounding, tuple((c.action, c.result, c.error) for c in s.calls))
                  for s in episode.steps))


WORK: dict[str, tuple[int, int, int]] = {}  # label -> PASSES of its run


def timed(label: str, run) -> tuple[list, float]:
    PASSES[:] = [0, 0, 0]
    started = time.perf_counter()
    episodes = run()
    seconds = time.perf_counter() - started
    WORK[label] = tuple(PASSES)
    work = (f"  {PASSES[0]:6,} passes {PASSES[1]:8,} token rows {PASSES[2] / 1e6:7.1f}M attention cells"
            if PASSES[0] else "")
    print(f"  {label:<58} {seconds:8.2f} s{work}", flush=True)
    return episodes, seconds


def work_bound(ours: str, baseline: str) -> str:
    """How much less work ours does than ``baseline``, per kind: a run whose time is mostly one kind of
    work cannot be faster than that kind's ratio (plus what it saves elsewhere, e.g. reloading)."""
    a, b = WORK[ours], WORK[baseline]
    return (f"passes {b[0] / a[0]:.2f}x, token rows {b[1] / a[1]:.2f}x, attention cells {b[2] / a[2]:.2f}x fewer")


def agreement(a: Sequence, b: Sequence) -> str:
    return f"{sum(trajectory(x) == trajectory(y) for x, y in zip(a, b))}/{len(a)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="HF checkpoint used as planner (default: a fresh tiny LLaMA)")
    parser.add_argument("--grounder", default=None, help="HF checkpoint of the grounding module (default: --model)")
    parser.add_argument("--data", default=None, help="GSM8K test.jsonl (default: generated held-out problems)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--eval_batch_size", type=int, default=16,
                        help="rows per batch, for the original shape's static batches and our sub-batches alike")
    parser.add_argument("--slots", type=int, default=None,
                        help="rows ours decodes together (default: --eval_batch_size)")
    parser.add_argument("--active_tasks", type=int, default=None,
                        help="tasks ours keeps in progress, as run_eval's flag (default: 4 x --eval_batch_size)")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--max_steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscribing a shared box)")
    parser.add_argument("--parts", default="hf,served", help="comma-separated: hf, served")
    parser.add_argument("--one_at_a_time", action="store_true", help="also time one question at a time, reloading")
    parser.add_argument("--latency_s", type=float, default=0.05, help="served: fixed wait per request")
    parser.add_argument("--latency_per_token_s", type=float, default=0.02, help="served: wait per generated word")
    parser.add_argument("--latency_jitter", type=float, default=0.5, help="served: per-request factor in 1 +- this")
    parser.add_argument("--concurrency", type=int, default=64, help="served: requests in flight per module")
    parser.add_argument("--device", default=None, help="where the models run (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"),
                        help="weights' dtype (default: bfloat16 on cuda, float32 on cpu)")
    parser.add_argument("--widen", default=None, metavar="HIDDEN,LAYERS",
                        help="run a HIDDEN-wide, LAYERS-deep LLaMA computing what the modules compute "
                             "(e.g. 2048,20: ~1B parameters; see the module docstring)")
    parser.add_argument("--kv_cache_tokens", type=int, default=None,
                        help="tokens ours' prefix cache keeps per module (default: HFGenerator's, 2 GiB)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    LOAD.update((key, value) for key, value in (("device", args.device), ("dtype", args.dtype)) if value)
    widen = None
    if args.widen:
        try:
            widen = tuple(int(value) for value in args.widen.split(","))
            if len(widen) != 2 or min(widen) < 1:
                raise ValueError
        except ValueError:
            parser.error(f"--widen takes HIDDEN,LAYERS (two positive integers, e.g. 2048,20), got {args.widen!r}")

    import torch

    torch.set_num_threads(args.threads)
    from lumos.llm.hf_backend import HFGenerator
    from lumos.tools.maths import maths_toolbox

    tasks = questions(args.data, args.n)
    options = dict(domain="maths", max_steps=args.max_steps, max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as scratch, maths_toolbox() as toolbox:
        plan_path = args.model or tiny_checkpoint(Path(scratch) / "tiny", [t for _, t in tasks])
        ground_path = args.grounder or plan_path
        if widen or LOAD or args.kv_cache_tokens is not None:
            device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
            if widen:
                started = time.perf_counter()
                options_wide = dict(device=device, dtype=args.dtype or ("bfloat16" if device.startswith("cuda")
                                                                        else "float32"))
                plan_path = widen_checkpoint(plan_path, Path(scratch) / "plan_wide", *widen, **options_wide)
                if args.grounder:
                    ground_path = widen_checkpoint(ground_path, Path(scratch) / "ground_wide", *widen, **options_wide)
                else:
                    ground_path = plan_path
                print(f"widened to {widen[0]} wide, {widen[1]} layers in {time.perf_counter() - started:.1f} s")
            probe = HFGenerator.from_pretrained(plan_path, batch_size=1, kv_cache_tokens=args.kv_cache_tokens, **LOAD)
            parameters = sum(p.numel() for p in probe.model.parameters())
            cache = probe.kv_cache.max_tokens if probe.kv_cache is not None else 0
            print(f"model: {parameters / 1e6:,.1f}M parameters, {probe.model.dtype} on {probe.model.device}"
                  + (f" ({torch.cuda.get_device_name()})" if probe.model.device.type == "cuda" else "")
                  + f"; prefix cache {cache:,} tokens per module")
            del probe
        print(f"questions: {len(tasks)} ({args.data or 'generated'})  planner: {plan_path}  grounder: {ground_path}  "
              f"eval_batch_size: {args.eval_batch_size}  max_new_tokens: {args.max_new_tokens}  "
              f"threads: {args.threads}")

        slots = args.slots or args.eval_batch_size

        def loaded_once(kv_cache_tokens: int | None, table: dict[str, str] | None = None):
            if kv_cache_tokens is None:
                kv_cache_tokens = args.kv_cache_tokens
            planner = HFGenerator.from_pretrained(plan_path, batch_size=slots, kv_cache_tokens=kv_cache_tokens, **LOAD)
            grounder = (HFGenerator.from_pretrained(ground_path, batch_size=slots, kv_cache_tokens=kv_cache_tokens,
                                                    **LOAD) if args.grounder else planner)
            for module in {id(planner): planner, id(grounder): grounder}.values():
                count_passes(module.model)
            if table is not None:
                planner, grounder = Recording(planner, table), Recording(grounder, table)
            return planner, grounder

        active = args.active_tasks or 4 * args.eval_batch_size

        def run_loaded(kv_cache_tokens: int | None, table: dict[str, str] | None = None, *, batch_by_batch=False):
            planner, grounder = loaded_once(kv_cache_tokens, table)
            agent = Agent(planner, grounder, toolbox, **options)
            if batch_by_batch:  # the runner until now: each batch of tasks runs to its slowest task's end
                episodes = [e for k in range(0, len(tasks), args.eval_batch_size)
                            for e in agent.run(tasks[k:k + args.eval_batch_size])]
            else:  # the runner: every task, at most `active` in progress, a finished task's place taken at once
                episodes = agent.run(tasks, active=active)
            usage = [planner.usage] if planner.usage is grounder.usage else [planner.usage, grounder.usage]
            return episodes, sum(u.prompt_tokens - u.cached_prompt_tokens for u in usage)

        Agent(*loaded_once(None), toolbox, **options).run(tasks[:4])  # warm-up (first passes of torch), untimed
        replies: dict[str, str] = {}
        ours_label = f"ours (KV caches kept, {active} tasks in progress)"
        (ours, ours_prefill), ours_s = timed(ours_label, lambda: run_loaded(None, replies))
        rounds = sum(len(e.steps) for e in ours)
        print(f"  rounds: {rounds} subgoals over {len(tasks)} questions; finished "
              f"{sum(e.status == 'finished' for e in ours)}, parse errors {sum(e.status == 'parse_error' for e in ours)}")
        if "hf" in parts:
            (batched, _), batched_s = timed(f"ours batch by batch ({args.eval_batch_size} tasks at a time)",
                                            lambda: run_loaded(None, batch_by_batch=True))
            (today, today_prefill), today_s = timed("without KV cache (whole conversations prefilled)",
                                                    lambda: run_loaded(0))
            original_planner = OriginalShapeGenerator(plan_path, args.eval_batch_size)
            original_grounder = OriginalShapeGenerator(ground_path, args.eval_batch_size)
            original_label = f"original shape (reload per round, static batches of {args.eval_batch_size})"
            original, original_s = timed(
                original_label, lambda: Agent(original_planner, original_grounder, toolbox, **options).run(tasks))
            print(f"  same trajectories as ours: batch by batch {agreement(batched, ours)}, without KV cache "
                  f"{agreement(today, ours)}, original shape {agreement(original, ours)}")
            if args.one_at_a_time:
                # the earlier baseline: the model reloaded on every call (one question), each prompt alone
                one_planner, one_grounder = OriginalShapeGenerator(plan_path, 1), OriginalShapeGenerator(ground_path, 1)
                single_agent = Agent(one_planner, one_grounder, toolbox, **options)
                single, single_s = timed("one question at a time (reload per round)",
                                         lambda: [single_agent.run([task])[0] for task in tasks])
                print(f"  same trajectories as ours: one at a time {agreement(single, ours)}")
            print(f"  prefill tokens per question: today {today_prefill / len(tasks):,.0f}, "
                  f"ours {ours_prefill / len(tasks):,.0f} ({today_prefill / max(ours_prefill, 1):.1f}x fewer)")
            print(f"  speed-up: ours vs original shape {original_s / ours_s:.2f}x; vs batch by batch "
                  f"{batched_s / ours_s:.2f}x; vs without KV cache {today_s / ours_s:.2f}x"
                  + (f"; vs one at a time {single_s / ours_s:.1f}x" if args.one_at_a_time else ""))
            print(f"  work, ours vs original shape: {work_bound(ours_label, original_label)}")
        if "served" in parts:
            served_comparison(args, tasks, replies, ours, toolbox, options)
    return 0


def served_comparison(args, tasks, replies: dict[str, str], reference, toolbox, options) -> None:
    from lumos.llm.openai_backend import OpenAIGenerator
    from lumos.llm.scripted import ScriptedGenerator
    from lumos.llm.serve import OpenAICompatibleServer

    latency = dict(latency_s=args.latency_s, latency_per_token_s=args.latency_per_token_s,
                   latency_jitter=args.latency_jitter)
    servers = [OpenAICompatibleServer(ScriptedGenerator.exact(replies), model_name=name, latency_seed=seed,
                                      **latency).start()
               for name, seed in (("planner", 1), ("grounder", 2))]
    clients = [OpenAIGenerator(None, base_url=server.url, concurrency=args.concurrency, progress=False,
                               max_attempts=1) for server in servers]
    try:
        any_prompt = next(iter(replies))
        for client in clients:  # the openai import, the clients and the model name, before any timing
            client.generate([any_prompt], max_new_tokens=args.max_new_tokens)
        print(f"served (lumos.llm.serve, replies of ours; latency ({args.latency_s:g} s + {args.latency_per_token_s:g} s "
              f"per generated word) x U[1 +- {args.latency_jitter:g}] per request; {args.concurrency} in flight):")
        barrier, barrier_s = timed("round by round (barrier)",
                                   lambda: Agent(*clients, toolbox, barrier=True, **options).run(tasks))
        free_agent = Agent(*clients, toolbox, **options)
        assert free_agent.barrier_free
        free, free_s = timed("without round barriers", lambda: free_agent.run(tasks))
        print(f"  same trajectories: barrier vs ours (HF) {agreement(barrier, reference)}, "
              f"no barrier vs barrier {agreement(free, barrier)}; most requests in flight: "
              f"{max(s.stats.max_in_flight for s in servers)}")
        print(f"  speed-up without barriers: {barrier_s / free_s:.2f}x")
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
