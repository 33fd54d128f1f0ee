"""The released evaluation's protocol in pieces: its action reading, its feedback cut, its round limits,
its scoring of tasks cut by the limit, and no BOS on an OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.runner import evaluate, parse_config
from eval.svamp.benchmark import BENCHMARK as SVAMP
from eval.svamp.benchmark import original_answer, task_text
from lumos.agent import Agent
from lumos.episode import Episode, Step
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer
from lumos.protocol import OriginalMathsProtocol, Protocol, read_original_action
from lumos.tools.maths import maths_toolbox


@pytest.mark.parametrize("text,expected", [
    ("R1 = Calculator(16-3-4)", (["R1"], "Calculator", "16-3-4")),
    ("R1, R2 = SolveEquation(R1)", (["R1", "R2"], "SolveEquation", "R1")),
    ("R2 = Calculator((R1+2)*3)", (["R2"], "Calculator", "(R1+2)*3")),
    ("Calculator(76 - 25)", ([], "Calculator", "76 - 25")),  # no result variable: not executed
    ("Output = R9 = 40", (["Output"], "", "R9")),
    ("R2 = Calculate(16/2)", (["R2"], "Calculate", "16/2")),
])
def test_actions_are_read_as_the_original_reads_them(text, expected):
    assert read_original_action(text) == expected


def _episode_after(actions: list[str]) -> Episode:
    episode = Episode(id="x", task="t", formulation="iterative")
    episode.original = {"subgoals": [], "actions": actions, "results": {}}
    return episode


@pytest.mark.parametrize("record,value", [
    ("R1 = Calculator(16-3-4) = 9", "9"),
    ("R1 = SetEquation(x + 5 = 10) = x + 5 = 10", "10"),  # the text after the last '='
    ("R1 = Calculator(36/2) = 18.", "18."),  # no period stripped
    ("R2 = Calculator(R9*2)", "Calculator(R9*2)"),  # a failed action: its own text
    ("R1 = SolveEquation(2 * w = 2) =  1", "1"),
])
def test_feedback_is_cut_as_the_original_cuts_it(record, value):
    feedback = OriginalMathsProtocol().feedback(Step(index=2), _episode_after([record]), default=None)
    assert feedback == f"The executed result for Subgoal 2 is {value}. Should we stop planning?"


def test_standard_protocol_strips_the_period():
    step = Step(index=1)
    from lumos.agent import result_feedback

    assert Protocol().feedback(step, _episode_after([]), result_feedback) == \
        "The executed result for Subgoal 1 is . Should we stop planning?"


SVAMP_TASK = "Jack had 8 apples. He bought 3 more and ate 2 How many apples does he have now?"
THREE_SUBGOALS = [
    (r"Initial Environment Description: None\.\n<\|assistant\|>\n\Z", "Subgoal 1: Calculate the apples bought."),
    (r"Subgoal 1 is 11\. Should we stop planning\?\n<\|assistant\|>\n\Z",
     "No, I will keep planning. Subgoal 2: Calculate the apples left."),
    (r"Subgoal 2 is 9\. Should we stop planning\?\n<\|assistant\|>\n\Z",
     "No, I will keep planning. Subgoal 3: Check the apples."),
    (r"Subgoal 3 is 9\. Should we stop planning\?\n<\|assistant\|>\n\Z", "Yes, I will stop planning."),
]
GROUNDER = [
    (r"Subgoal 3: Check the apples\.\n<\|assistant\|>\n\Z", "R3 = Calculator(R2)"),
    (r"Subgoal 2: Calculate the apples left\.\n<\|assistant\|>\n\Z", "R2 = Calculator(R1-2)"),
    (r"Subgoal 1: Calculate the apples bought\.\n<\|assistant\|>\n\Z", "R1 = Calculator(8+3)"),
]


@pytest.mark.parametrize("rounds,subgoals,status", [(4, 2, "step_limit"), (3, 1, "step_limit"), (16, 3, "finished")])
def test_round_limit_counts_planner_and_grounder_calls(rounds, subgoals, status):
    planner, grounder = ScriptedGenerator(THREE_SUBGOALS), ScriptedGenerator(GROUNDER)
    with maths_toolbox() as toolbox:
        agent = Agent(planner, grounder, toolbox, domain="maths", protocol=OriginalMathsProtocol(rounds))
        [episode] = agent.run([("a", SVAMP_TASK)])
    assert len(planner.calls) + len(grounder.calls) == min(rounds, 7)
    assert episode.status == status
    assert len(episode.original["subgoals"]) == subgoals
    expected = dict(list({"R1": "11", "R2": "9", "R3": "9"}.items())[:subgoals])
    assert episode.original["results"] == expected
    assert agent.max_new_tokens == 512


def test_svamp_task_cut_by_the_round_limit_is_scored_by_the_original_rule(tmp_path):
    data = tmp_path / "svamp"
    data.mkdir()
    (data / "test.json").write_text(json.dumps([{"ID": "chal-1", "Body": "Jack had 8 apples. He bought 3 more and "
                                                 "ate 2", "Question": "How many apples does he have now?",
                                                 "Answer": 9.0}]))
    rules = {}
    for name, script in (("p", THREE_SUBGOALS), ("g", GROUNDER)):
        rules[name] = tmp_path / f"{name}.json"
        rules[name].write_text(json.dumps({"rules": [list(rule) for rule in script]}))
    results = {}
    for scoring in ("original", "standard"):
        config = parse_config(SVAMP, ["--data_dir", str(data), "--save_dir", str(tmp_path / scoring),
                                      "--planner", f"scripted:{rules['p']}", "--grounder", f"scripted:{rules['g']}",
                                      "--prompt_style", "original", "--scoring", scoring])
        results[scoring] = evaluate(config, SVAMP)
    # SVAMP's 4 rounds execute 2 subgoals and never ask the planner whether to stop
    assert results["original"]["status"] == {"step_limit": 1} == results["standard"]["status"]
    assert results["original"]["accuracy"] == 1.0  # the original scores its final variable, R2 = 9
    assert results["standard"]["accuracy"] == 0.0  # ours: an unfinished episode scores 0


def test_original_scoring_of_our_loop_is_refused_up_front(tmp_path, capsys):
    # the released scorers read the released loop's bookkeeping: under our loop they would score 0 silently
    with pytest.raises(SystemExit):
        parse_config(SVAMP, ["--data_dir", str(tmp_path), "--save_dir", str(tmp_path / "out"),
                             "--planner", "scripted:p.json", "--grounder", "scripted:g.json",
                             "--scoring", "original"])
    assert "needs --prompt_style original" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_svamp_question_is_body_space_question_unchanged():
    assert task_text("Jack had 8 apples ", " How many?") == "Jack had 8 apples   How many?"
    assert task_text("a discount of 25 dollars on each pack", "How much?") == \
        "a discount of 25 dollars on each pack How much?"
    assert original_answer(2.5) == "2" and original_answer(51.0) == "51"


class _RecordingServer(OpenAICompatibleServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies: list[dict] = []

    def generate(self, kind, body):
        self.bodies.append(body)
        return super().generate(kind, body)


@pytest.mark.parametrize("style", ["original", "tulu"])
def test_served_model_is_asked_for_no_bos_in_original_style(tmp_path, style):
    data = tmp_path / "svamp"
    data.mkdir()
    (data / "test.json").write_text(json.dumps([{"ID": "c1", "Body": "Jack had 8 apples.",
                                                 "Question": "How many?", "Answer": 8.0}]))
    with _RecordingServer(ScriptedGenerator([("", "Answer is 8.")])) as server:
        config = parse_config(SVAMP, ["--data_dir", str(data), "--save_dir", str(tmp_path / "out"),
                                      "--formulation", "cot", "--planner", server.url, "--prompt_style", style])
        metrics = evaluate(config, SVAMP)
    [body] = server.bodies
    if style == "original":
        assert body["add_special_tokens"] is False and body["max_tokens"] == 512 and body["stop"] == ["\n"]
        assert body["prompt"] == "<|user|>\nJack had 8 apples. How many?\n<|assistant|>\n"
    else:
        assert "add_special_tokens" not in body and body["max_tokens"] == 256
    assert metrics["accuracy"] == 1.0
    assert json.loads((Path(config.save_dir) / "run.json").read_text())["config"]["prompt_style"] == style


@pytest.mark.parametrize("args,expected", [
    ("x + R1 = 10", "x + (9) = 10"),  # an operator: values in parentheses
    ("3x+2=R1*2", "3x+2=(9)*2"),
    ("R1", "9"),  # none: as it is
    ("R3 * 2", ":(x + 5 = 10): * 2"),  # an equation
    ("R3(x=1)", "x + 5 = 10(x=1)"),  # a call: as it is
])
def test_results_are_put_in_as_the_original_puts_them(args, expected):
    from lumos.protocol import original_substitute

    assert original_substitute(args, {"R1": "9", "R3": "x + 5 = 10"}) == expected


def test_set_equation_and_define_keep_the_text_as_written():
    grounder = ScriptedGenerator([(r"Subgoal 1: Set it up\.\n<\|assistant\|>\n\Z",
                                   "R1 = Define(9); R2 = SetEquation(x + R1 = 10); R3 = SolveEquation(R2)")])
    planner = ScriptedGenerator([(r"None\.\n<\|assistant\|>\n\Z", "Subgoal 1: Set it up."),
                                 (r"Subgoal 1 is 1\. Should", "Yes, I will stop planning.")])
    with maths_toolbox() as toolbox:
        agent = Agent(planner, grounder, toolbox, domain="maths", protocol=OriginalMathsProtocol(16))
        [episode] = agent.run([("a", "x plus 9 is 10. What is x?")])
    assert episode.status == "finished"
    assert episode.original["results"] == {"R1": "9", "R2": "x + (9) = 10", "R3": " 1"}
    assert episode.original["actions"] == ["R1 = Define(9) = 9", "R2 = SetEquation(x + R1 = 10) = x + (9) = 10",
                                           "R3 = SolveEquation(R2) =  1"]


def test_every_svamp_task_is_the_originals(shared_data):
    from eval.svamp.benchmark import load

    path = shared_data / "eval" / "svamp" / "test.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    examples = load(path)
    assert len(examples) == len(records) == 1000
    assert [example.question for example in examples] == [r["Body"] + " " + r["Question"] for r in records]
    assert [original_answer(example.answer) for example in examples] == [str(int(r["Answer"])) for r in records]


# The original's own worked maths examples (its data/incontext.py), with every result in the form its
# WolframAlpha calls give: an exact non-integer as a reduced fraction (``1 - 2/5`` -> ``3/5``), a
# formula with a decimal or a percentage as a decimal (``2 - 0.5`` -> ``1.5``, ``1 - 25%`` -> ``0.75``),
# a ``Solve`` without an unknown as the plain value. The reference transcripts (B_eval/gsm, B_eval/svamp)
# hold no non-integer WolframAlpha answer; this file is the reference that does.
INCONTEXT = "lumos_reference/A_training/maths/incontext/input/converted/incontext_maths_converted.json"


def _incontext_example(shared_data, first_action):
    """``(subgoals, [[(action, result), ...] per subgoal])`` of the in-context example with that first action."""
    for line in (shared_data / INCONTEXT).read_text(encoding="utf-8").splitlines():
        plan = json.loads(line)["subgoal_plan"]
        if f": {first_action} = " not in plan:
            continue
        subgoals, actions = [], []
        for block in plan.strip().split("\n\n"):
            head, *lines = block.strip().split("\n")
            subgoals.append(head.split(": ", 1)[1])
            actions.append([tuple(part.strip() for part in line.split(": ", 1)[1].rsplit(" = ", 1))
                            for line in lines])
        return subgoals, actions
    raise LookupError(first_action)


def _replay_original(subgoals, actions):
    """Our ``--prompt_style original`` loop fed the example's subgoals and actions: (results, planner turns)."""
    def plan(prompt):
        done = prompt.count("Should we stop planning?")
        if done == len(subgoals):
            return "Yes, I will stop planning."
        text = f"Subgoal {done + 1}: {subgoals[done]}"
        return text if done == 0 else f"No, I will keep planning. {text}"

    def ground(prompt):
        index = int(prompt.rsplit("Subgoal to be grounded: ", 1)[1].split("Subgoal ", 1)[1].split(":")[0])
        return "; ".join(action for action, _ in actions[index - 1])

    planner, grounder = ScriptedGenerator(plan), ScriptedGenerator(ground)
    with maths_toolbox(number_style="wolfram") as toolbox:  # as the runner builds it in original mode
        agent = Agent(planner, grounder, toolbox, domain="maths", protocol=OriginalMathsProtocol(16))
        [episode] = agent.run([("a", "An in-context example.")])
    assert episode.status == "finished"
    return episode.original["results"], planner.calls


@pytest.mark.parametrize("first_action", [
    "R1 = Calculator(2 - 0.5)",  # 1.5, then 1.5 / 0.25 = 6
    "R1 = Calculator(15 / 25%)",  # 60, 1 - 25% = 0.75, 60 * 0.75 = 45
    "R1 = Calculator(28 * 1/7)",
    "R1 = Calculator(8 * 18)",
    "R1 = Calculator(1 - 2/5)",  # 3/5, 100 * 3/5 = 60, 2/3, 75 * 2/3 = 50 (not 0.666667 and 50.000025)
])
def test_wolframalpha_result_forms_of_the_originals_incontext_examples(shared_data, first_action):
    subgoals, actions = _incontext_example(shared_data, first_action)
    results, planner_prompts = _replay_original(subgoals, actions)
    expected = {}
    for step in actions:
        for action, value in step:
            expected.update(zip(action.split(" = ")[0].split(", "), value.split(", ")))
    assert results == expected
    # the planner reads each subgoal's last value in that form
    for k, step in enumerate(actions, start=1):
        assert any(f"The executed result for Subgoal {k} is {step[-1][1]}. Should" in p for p in planner_prompts)


def test_solve_equation_without_an_unknown_keeps_the_plain_value():
    """``Solve`` of a formula without an unknown is WolframAlpha's plain value, kept whole (the in-context
    example's ``R5 = SolveEquation(R2 + R4) = 110``); ``Solve 2 * w = 2`` is ``w = 1``, of which the
    original keeps `` 1`` (B_eval/gsm/lumos_iterative.transcripts.jsonl, example 1)."""
    results, _ = _replay_original(["Add them.", "Solve it."],
                                  [[("R1 = Calculator(100 * 3)", "300"), ("R2 = SolveEquation(R1 + 50)", "350")],
                                   [("R3 = SolveEquation(2 * w = R2)", " 175")]])
    assert results == {"R1": "300", "R2": "350", "R3": " 175"}


@pytest.mark.parametrize("style,results", [("original", ["2/3", "50"]), ("tulu", ["0.666667", "50.000025"])])
def test_the_runner_writes_wolframalphas_numbers_in_original_style(tmp_path, style, results):
    """Under ``--prompt_style original`` the maths toolbox writes numbers as WolframAlpha did (``2/3``,
    exact through ``R1``: ``75 * R1`` = ``50``); the default style keeps the plain decimals."""
    data = tmp_path / "svamp"
    data.mkdir()
    (data / "test.json").write_text(json.dumps([{"ID": "c1", "Body": "Ralph missed 1/3 of 75 balls.",
                                                 "Question": "How many did he hit?", "Answer": 50.0}]))
    rules = {"p": [(r"None\.\n<\|assistant\|>\n\Z", "Subgoal 1: Calculate the balls he hit."),
                   (r"Subgoal 1 is [\d.]+\. Should", "Yes, I will stop planning.")],
             "g": [("", "R1 = Calculator(1 - 1/3); R2 = Calculator(75 * R1)")]}
    for name, script in rules.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"rules": [list(rule) for rule in script]}))
    config = parse_config(SVAMP, ["--data_dir", str(data), "--save_dir", str(tmp_path / "out"),
                                  "--planner", f"scripted:{tmp_path / 'p.json'}",
                                  "--grounder", f"scripted:{tmp_path / 'g.json'}", "--prompt_style", style])
    evaluate(config, SVAMP)
    [record] = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [call["result"] for call in record["steps"][0]["calls"]] == results
    assert record["status"] == "finished"
