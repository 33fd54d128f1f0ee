"""data.process_for_train writes docs/FORMAT.md §3 files byte for byte, and they parse back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data import process_for_train
from lumos.format import parse_actions
from lumos.prompts import parse_planner_reply

CONVERTED = {"id": "mini:1", "task": "Janet has 16 eggs and eats 7. She sells the rest at $2. What does she make?",
             "natural_language_plan": "...",
             "subgoal_plan": "Subgoal 1: Calculate how many eggs Janet sells.\nAction 1-1: R1 = Calculator(16 - 7) = 9\n\n"
                             "Subgoal 2: Calculate how much she makes.\nAction 2-1: Output = Calculator(R1 * 2) = 18",
             "ans": "18"}

# Written by hand from FORMAT.md, as json.dumps writes them (ASCII, ", " and ": " separators).
# Onetime grounding keeps `Output` as annotated, as the released files do (reference data, A_training).
EXPECTED_PLAN_ITERATIVE = (
    '{"dataset": "maths", "id": "maths_0", "messages": ['
    '{"role": "user", "content": "Please provide a reasonable subgoal-based plan to solve the given task.\\n'
    'Task: Janet has 16 eggs and eats 7. She sells the rest at $2. What does she make?; Initial Environment Description: None."}, '
    '{"role": "assistant", "content": "Subgoal 1: Calculate how many eggs Janet sells."}, '
    '{"role": "user", "content": "The executed result for Subgoal 1 is 9. Should we stop planning?"}, '
    '{"role": "assistant", "content": "No, I will keep planning. Subgoal 2: Calculate how much she makes."}, '
    '{"role": "user", "content": "The executed result for Subgoal 2 is 18. Should we stop planning?"}, '
    '{"role": "assistant", "content": "Yes, I will stop planning."}]}\n')
EXPECTED_GROUND_ONETIME_TAIL = (
    'Task: Janet has 16 eggs and eats 7. She sells the rest at $2. What does she make? \\n'
    'Subgoals to be grounded: Subgoal 1: Calculate how many eggs Janet sells.; Subgoal 2: Calculate how much she makes.\\n"}, '
    '{"role": "assistant", "content": "R1 = Calculator(16 - 7); Output = Calculator(R1 * 2)"}]}\n')


def _write_converted(root: Path, records: list[dict | str]) -> None:
    folder = root / "maths" / "converted"
    folder.mkdir(parents=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (folder / "mini_converted.json").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_lumos_files_match_format_byte_for_byte(tmp_path):
    _write_converted(tmp_path, [CONVERTED])
    process_for_train.main(["--domain", "maths", "--formulation", "lumos_iterative", "--data_dir", str(tmp_path)])
    process_for_train.main(["--domain", "maths", "--formulation", "lumos_onetime", "--data_dir", str(tmp_path)])
    annots = tmp_path / "maths" / "train_annots"
    assert (annots / "lumos_maths_plan_iterative.jsonl").read_text() == EXPECTED_PLAN_ITERATIVE
    onetime = (annots / "lumos_maths_ground_onetime.jsonl").read_text()
    assert onetime.startswith('{"dataset": "maths", "id": "maths_0", "messages": [{"role": "user", "content": '
                              '"Please ground the given subgoal')
    assert onetime.endswith(EXPECTED_GROUND_ONETIME_TAIL)
    ground = json.loads((annots / "lumos_maths_ground_iterative.jsonl").read_text())
    assert [m["content"] for m in ground["messages"][1::2]] == ["R1 = Calculator(16 - 7)", "R2 = Calculator(R1 * 2)"]


def test_unusable_annotations_are_reported_not_dropped(tmp_path, capsys):
    broken = dict(CONVERTED, id="mini:2", subgoal_plan="Here is the plan: add things")
    _write_converted(tmp_path, [CONVERTED, broken, "{oops", json.dumps({"id": "mini:4"}), CONVERTED])
    process_for_train.main(["--domain", "maths", "--formulation", "lumos_iterative", "--data_dir", str(tmp_path)])
    annots = tmp_path / "maths" / "train_annots"
    for module in ("plan", "ground"):
        rows = [json.loads(line) for line in (annots / f"lumos_maths_{module}_iterative.jsonl").read_text().splitlines()]
        assert [row["id"] for row in rows] == ["maths_0", "maths_4"]  # ids are input positions: they never shift
    skipped = [json.loads(line) for line in (annots / "lumos_maths_iterative.skipped.jsonl").read_text().splitlines()]
    assert [(r["index"], r["module"], r["reason"]) for r in skipped] == [
        (1, "plan", "subgoal_without_action"), (1, "ground", "subgoal_without_action"),
        (2, "plan", "bad_input"), (2, "ground", "bad_input"), (3, "plan", "missing_field"), (3, "ground", "missing_field")]
    assert skipped[0]["source"].endswith("mini_converted.json:2")
    out = capsys.readouterr().out
    assert "subgoal_without_action 2, bad_input 2, missing_field 2" in out
    assert "note: 1 of the annotations are outside the documented format" in out and "mini_converted.json:2" in out
    process_for_train.main(["--domain", "maths", "--formulation", "lumos_iterative", "--data_dir", str(tmp_path),
                            "--compat", "exact"])
    rows = [json.loads(line) for line in (annots / "lumos_maths_plan_iterative.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["maths_0", "maths_1"]  # the original numbers the records it writes


def test_output_numbering_starts_afresh_per_record_unless_exact(tmp_path):
    """The original's counter for `Output` carries over from the previous record; ours does not."""
    only_output = dict(CONVERTED, subgoal_plan="Subgoal 1: Add.\nAction 1-1: Output = Calculator(2 + 3) = 5")
    _write_converted(tmp_path, [only_output, CONVERTED, only_output])
    annots = tmp_path / "maths" / "train_annots"

    def answers(*extra: str) -> list[list[str]]:
        process_for_train.main(["--domain", "maths", "--formulation", "lumos_iterative", "--data_dir", str(tmp_path),
                                *extra])
        rows = [json.loads(line) for line in (annots / "lumos_maths_ground_iterative.jsonl").read_text().splitlines()]
        return [[m["content"] for m in row["messages"][1::2]] for row in rows]

    assert answers() == [["R1 = Calculator(2 + 3)"], ["R1 = Calculator(16 - 7)", "R2 = Calculator(R1 * 2)"],
                         ["R1 = Calculator(2 + 3)"]]
    # exact: the first record has no counter yet and is skipped; the third gets the second's R1 + 1
    assert answers("--compat", "exact") == [["R1 = Calculator(16 - 7)", "R2 = Calculator(R1 * 2)"],
                                            ["R2 = Calculator(2 + 3)"]]
    skipped = [json.loads(line) for line in (annots / "lumos_maths_iterative.skipped.jsonl").read_text().splitlines()]
    assert {(r["index"], r["reason"]) for r in skipped} == {(0, "output_before_any_variable")}


def test_unified_and_baselines(tmp_path):
    _write_converted(tmp_path, [CONVERTED])
    raw = tmp_path / "maths" / "raw_data"
    raw.mkdir()
    (raw / "gsm.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A step ** 2+2 = <<2+2=4>>4 now.\n#### 4"}) + "\n")
    (raw / "asdiv.jsonl").write_text(json.dumps({"question": "Q2?", "solution": "7+2=9", "answer": "9 (apples)"}) + "\n")
    process_for_train.main(["--domain", "maths", "--formulation", "lumos_iterative", "--data_dir", str(tmp_path)])
    process_for_train.main(["--domain", "maths", "--formulation", "cot", "--data_dir", str(tmp_path)])
    process_for_train.main(["--domain", "maths", "--formulation", "direct", "--data_dir", str(tmp_path)])
    # files in name order (asdiv before gsm); GSM8K's worked answer is kept with its markup, as the original keeps it
    cot = [json.loads(row) for row in (tmp_path / "maths/train_annots/maths_cot.jsonl").read_text().splitlines()]
    assert [row["messages"][1]["content"] for row in cot] == ["7+2=9. Answer is 9.",
                                                            "A step ** 2+2 = <<2+2=4>>4 now. Answer is 4."]
    direct = [json.loads(row) for row in (tmp_path / "maths/train_annots/maths_direct.jsonl").read_text().splitlines()]
    assert [row["messages"] for row in direct] == [
        [{"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "9"}],
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "4"}]]
    process_for_train.main(["--unified", "maths", "--data_dir", str(tmp_path)])
    unified = tmp_path / "unified/train_annots/lumos_unified_plan_iterative.jsonl"
    assert unified.read_text() == (tmp_path / "maths/train_annots/lumos_maths_plan_iterative.jsonl").read_text()
    with pytest.raises(SystemExit, match="lumos_complex_qa_plan_iterative.jsonl is missing"):
        process_for_train.main(["--unified", "maths,complex_qa", "--data_dir", str(tmp_path)])


def test_gsm8k_training_files_parse_back(tmp_path, shared_data):
    """Real data: convert the GSM8K socratic train set by rules and parse every training turn back."""
    from data import prompt_convertion

    source = shared_data / "gsm8k" / "train_socratic.jsonl"
    prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--convert_all", "--no_progress",
                            "--output_dir", str(tmp_path / "maths" / "converted")])
    for formulation in ("lumos_iterative", "lumos_onetime"):
        process_for_train.main(["--domain", "maths", "--formulation", formulation, "--data_dir", str(tmp_path)])
    annots = tmp_path / "maths" / "train_annots"
    plans = [json.loads(line) for line in (annots / "lumos_maths_plan_iterative.jsonl").read_text().splitlines()]
    grounds = [json.loads(line) for line in (annots / "lumos_maths_ground_iterative.jsonl").read_text().splitlines()]
    assert len(plans) == len(grounds) > 7000
    for plan_row, ground_row in zip(plans, grounds):
        replies = [parse_planner_reply(m["content"]) for m in plan_row["messages"][1::2]]
        assert replies[-1].stop and all(not r.stop for r in replies[:-1])
        assert [r.index for r in replies[:-1]] == list(range(1, len(replies)))
        for message in ground_row["messages"][1::2]:
            actions = parse_actions(message["content"])
            assert all(a.result is None and a.tool == "Calculator" and "Output" not in a.outputs for a in actions)
    onetime = [json.loads(line) for line in (annots / "lumos_maths_ground_onetime.jsonl").read_text().splitlines()]
    assert all(len(row["messages"]) == 2 for row in onetime)


def test_prm800k_records_without_solution_or_beyond_the_limit_are_listed(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "maths" / "raw_data"
    raw.mkdir(parents=True)
    prm = [{"question": {"problem": f"P{i}?", "ground_truth_solution": None if i == 1 else f"S{i}.",
                         "ground_truth_answer": str(i)}} for i in range(4)]
    (raw / "phase2_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prm))
    monkeypatch.setattr(process_for_train, "PRM_LIMIT", 3)
    for formulation in ("cot", "direct"):
        process_for_train.main(["--domain", "maths", "--formulation", formulation, "--data_dir", str(tmp_path)])
    annots = tmp_path / "maths" / "train_annots"
    cot = [json.loads(row) for row in (annots / "maths_cot.jsonl").read_text().splitlines()]
    assert [(row["id"], row["messages"][1]["content"]) for row in cot] == [("maths_0", "S0. Answer is 0."),
                                                                          ("maths_2", "S2. Answer is 2.")]
    direct = [json.loads(row) for row in (annots / "maths_direct.jsonl").read_text().splitlines()]
    assert [row["id"] for row in direct] == ["maths_0", "maths_1", "maths_2"]
    skipped = [json.loads(row) for row in (annots / "maths_cot.skipped.jsonl").read_text().splitlines()]
    assert [(r["index"], r["reason"]) for r in skipped] == [(1, "no_solution"), (3, "beyond_prm_limit")]
    assert "no_solution 1, beyond_prm_limit 1" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="maths and complex_qa only"):
        process_for_train.main(["--domain", "web_agent", "--formulation", "cot", "--data_dir", str(tmp_path)])
