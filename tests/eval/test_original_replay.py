"""``--prompt_style original`` replays the released GSM8K/SVAMP evaluation, ``--scoring original`` its scores.

Oracle: ``lumos_reference/B_eval`` (transcripts of the original code run under scripted models). Fed
the recorded replies, our loop must send the planner and the grounder every recorded prompt byte
for byte, and under ``--scoring original`` give the recorded predictions, per-example scores and
metric. Calls the original made for tasks that had already stopped (it ignores their output) are
not expected from us.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from eval.gsm.benchmark import BENCHMARK as GSM
from eval.runner import _Modules, evaluate, parse_config, run_batch
from eval.svamp.benchmark import BENCHMARK as SVAMP
from lumos.llm.scripted import ScriptedGenerator

BENCHMARKS = {"gsm": GSM, "svamp": SVAMP}
FORMULATIONS = ("lumos_iterative", "lumos_onetime", "cot", "direct")
CASES = [(bench, formulation) for bench in BENCHMARKS for formulation in FORMULATIONS]
DEMOS = ["gsm_count_not_executed", "gsm_output_variable_iterative", "gsm_immediate_stop"]


def _reference(shared_data: Path, name: str) -> list[dict]:
    path = shared_data / "lumos_reference" / "B_eval" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _module(call: dict) -> str:
    """``plan`` or ``ground``; the one cot/direct model plays the planner's part here."""
    return "ground" if call["module"] == "ground" else "plan"


def _expected_calls(records: list[dict]) -> dict[tuple[int, str], list[dict]]:
    """The calls we must make: per (example, module), in order; those for stopped tasks left out."""
    calls = defaultdict(list)
    for record in records:
        for call in record["calls"]:
            if call["type"] == "lm" and not call["already_stopped_before_call"]:
                calls[record["example"], _module(call)].append(call)
    return calls


def _replies(records: list[dict], module: str) -> list[list[str]]:
    return [[call["prompt"], call["scripted_reply"]] for record in records for call in record["calls"]
            if call["type"] == "lm" and _module(call) == module and not call["already_stopped_before_call"]]


def _config(shared_data, tmp_path, bench, formulation, count, records, scoring="original"):
    folder = tmp_path / f"{bench}_{formulation}"
    folder.mkdir(exist_ok=True)
    specs = []
    modules = ("plan", "ground") if formulation.startswith("lumos_") else ("plan",)
    for module in modules:
        path = folder / f"{module}.json"
        path.write_text(json.dumps({"exact": _replies(records, module)}), encoding="utf-8")
        specs.append(f"scripted:{path}")
    flags = ["--data_dir", str(shared_data / "eval" / bench), "--save_dir", str(folder / "out"),
             "--max_num_examples", str(count), "--eval_batch_size", str(count), "--formulation", formulation,
             "--prompt_style", "original", "--scoring", scoring, "--planner", specs[0]]
    if len(specs) > 1:
        flags += ["--grounder", specs[1]]
    return parse_config(BENCHMARKS[bench], flags)


def _sent_prompts(config, benchmark, records) -> dict[tuple[int, str], list[str]]:
    """Run the loop with in-memory scripted modules; every prompt they received, per (example, module)."""
    modules = _Modules(config, benchmark)
    generators = {}
    for module, spec in (("plan", config.planner), ("ground", config.grounder)):
        if spec:
            generators[module] = modules._generators[spec] = ScriptedGenerator.exact(_replies(records, module))
    try:
        from eval.runner import load_examples

        examples = load_examples(config, benchmark)
        run_batch(examples, config, benchmark, modules)
    finally:
        modules.close()
    questions = [record["question"].strip() for record in records]
    sent = defaultdict(list)
    for module, generator in generators.items():
        for prompt in generator.calls:
            owner = [i for i, question in enumerate(questions) if f"\n{question}" in prompt or f" {question}" in prompt]
            sent[owner[0] if len(owner) == 1 else -1, module].append(prompt)
    return sent


def _check_prompts(sent, expected, *, prefix=False):
    assert sent.get((-1, "plan"), []) == [] and sent.get((-1, "ground"), []) == [], "a prompt of no example"
    for key, calls in expected.items():
        want = [call["prompt"] for call in calls]
        got = sent.get(key, [])
        if prefix:
            got = got[:len(want)]
        for n, (ours, theirs) in enumerate(zip(got, want)):
            assert ours == theirs, f"example {key[0]} {key[1]} call {n}: prompts differ"
        assert len(got) == len(want), f"example {key[0]} {key[1]}: {len(got)} prompts sent, {len(want)} recorded"
    unexpected = set(sent) - set(expected)
    assert not prefix or not unexpected or all(not sent[key] for key in unexpected)


@pytest.mark.parametrize("bench,formulation", CASES)
def test_original_mode_replays_reference(shared_data, tmp_path, bench, formulation):
    records = _reference(shared_data, f"{bench}/{formulation}.transcripts.jsonl")
    config = _config(shared_data, tmp_path, bench, formulation, len(records), records)
    benchmark = BENCHMARKS[bench]
    # the tasks as the original read them
    from eval.runner import load_examples

    examples = load_examples(config, benchmark)
    assert [example.question for example in examples] == [record["question"].strip() for record in records]

    # every recorded prompt, byte for byte, in order, per example and module
    _check_prompts(_sent_prompts(config, benchmark, records), _expected_calls(records))

    # predictions, per-example scores and the metric under --scoring original
    metrics = evaluate(config, benchmark)
    ours = [json.loads(line) for line in (Path(config.save_dir) / "predictions.jsonl").read_text().splitlines()]
    assert len(ours) == len(records)
    for record, reference in zip(ours, records):
        correct = bool(reference["score"]["correct"])
        assert record["scores"] == {"accuracy": float(correct)}, (reference["example"], reference["cases"])
        if formulation.startswith("lumos_"):
            assert record["original"]["results"] == reference["final_state"]["results"], reference["example"]
            assert record["original"]["actions"] == reference["final_state"]["actions"], reference["example"]
            assert record["original"]["subgoals"] == reference["final_state"]["subgoals"], reference["example"]
            if reference["score"]["written_to_predictions_file"]:
                final = reference["score"]["final_variable"]
                assert record["original"]["results"][final] == reference["score"]["pred"]
    # the metric: the mean of the examples' scores as the original computes them (``run_printed_metric``
    # was printed by runs over more examples than the file keeps, e.g. 13/14 for SVAMP cot)
    expected = sum(bool(reference["score"]["correct"]) for reference in records) / len(records)
    assert metrics["accuracy"] == pytest.approx(expected)
    assert metrics["scoring"] == "original" and metrics["prompt_style"] == "original"


@pytest.mark.parametrize("demo", DEMOS)
def test_original_mode_replays_failure_demos(shared_data, tmp_path, demo):
    """Runs where the original crashed or lost an example: the prompts it sent before that are ours too."""
    records = _reference(shared_data, f"failure_demos/lumos_iterative.{demo}.transcripts.jsonl")
    config = _config(shared_data, tmp_path, "gsm", "lumos_iterative", len(records), records)
    _check_prompts(_sent_prompts(config, GSM, records), _expected_calls(records), prefix=True)
    evaluate(config, GSM)
    ours = [json.loads(line) for line in (Path(config.save_dir) / "predictions.jsonl").read_text().splitlines()]
    for record, reference in zip(ours, records):
        assert record["original"]["results"] == reference["final_state"]["results"]
        assert record["scores"]["accuracy"] == float(bool(reference["score"]["correct"]))


@pytest.mark.parametrize("formulation", ["lumos_iterative", "cot"])
def test_standard_scoring_is_the_default_and_named(shared_data, tmp_path, formulation):
    records = _reference(shared_data, f"gsm/{formulation}.transcripts.jsonl")
    config = _config(shared_data, tmp_path, "gsm", formulation, len(records), records, scoring="standard")
    metrics = evaluate(config, GSM)
    assert metrics["scoring"] == "standard"
    assert parse_config(GSM, ["--planner", "p", "--grounder", "g"]).scoring == "standard"
