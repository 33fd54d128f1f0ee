"""Complex-QA and web-agent training files, and the unified mixture, from rules conversions (docs/FORMAT.md §3).

Hand-made StrategyQA, MuSiQue and Mind2Web records go through both CLIs as subprocesses
(``python -m data.prompt_convertion --backend rules``, then ``python -m data.process_for_train``);
every output line is compared with a line written by hand from FORMAT.md. The real files in
the shared data folder go through the same path, and every turn must parse back and use only
its domain's tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data import process_for_train, prompt_convertion
from lumos.format import parse_actions
from lumos.prompts import parse_planner_reply, split_onetime_plan
from lumos.vocabulary import vocabulary

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- hand-made sources

GSM8K = {"question": "Ann has 3 apples and buys 4 more. How many apples does she have?",
         "answer": "How many apples? ** Ann has 3+4 = <<3+4=7>>7 apples.\n#### 7"}
STRATEGYQA = {"qid": "sq1", "term": "Cat", "description": "", "question": "Is a cat heavier than a mouse?",
              "answer": True, "facts": ["A cat can weigh 4 kg.", "A mouse can weigh 20 g."],
              "decomposition": ["How much does a cat weigh?", "How much does a mouse weigh?", "Is #1 more than #2?"],
              "evidence": [[[["Cat-1"]], [["Mouse-2"]], ["operation"]]]}
MUSIQUE = {"id": "2hop__1_2", "question": "Who founded the company that makes the Walkman?",
           "answer": "Masaru Ibuka", "answer_aliases": [], "answerable": True,
           "paragraphs": [
               {"idx": 0, "title": "Walkman", "paragraph_text": "The Walkman is a portable cassette player made by Sony.",
                "is_supporting": True},
               {"idx": 1, "title": "Sony", "paragraph_text": "Sony was founded by Masaru Ibuka and Akio Morita.",
                "is_supporting": True},
               {"idx": 2, "title": "Radio", "paragraph_text": "Radio is older.", "is_supporting": False}],
           "question_decomposition": [
               {"id": 1, "question": "Walkman >> manufacturer", "answer": "Sony", "paragraph_support_idx": 0},
               {"id": 2, "question": "Who founded #1?", "answer": "Masaru Ibuka", "paragraph_support_idx": 1}]}
MIND2WEB = {"annotation_id": "w1", "confirmed_task": "Find a flight from New York to Boston.",
            "action_reprs": ["[textbox]  From -> TYPE: New York", "[span]  New York -> CLICK",
                             "[combobox]  Cabin -> SELECT: Economy", "[button]  Search -> CLICK"]}

# --------------------------------------------------------------------------- expected, by hand from FORMAT.md

PLAN_PROMPT = "Please provide a reasonable subgoal-based plan to solve the given task.\nTask: {task}; " \
              "Initial Environment Description: None."
GROUND_HEAD = ("Please ground the given subgoal to corresponding executable actions for solving the given task. "
               "The grounded actions must be the one in available action list.\n\nThe available action list is ")
QA_TOOLS = ("'KnowledgeQuery', 'ParagraphRetrieve', 'QA', 'Calculator', and 'Code'.\n"
            "Calculator(formula): Calculate the input formula; KnowledgeQuery(query): Capture the relevant webpages "
            "according to the query; ParagraphRetrieve(context, query): Given a query, retrieve the most relevant "
            "paragraphs from the given context; QA(context, query): Given context, answer the given query; "
            "Calculator(formula): Calculate the input formula; Code(pseudo_code): Generate a Python function that "
            "corresponds to the pseudo code.")
WEB_TOOLS = ("'CLICK', 'TYPE', 'SELECT'.\n"
             "CLICK(Env, Query): Click the relevant html region in Env according to Query; TYPE(Env, Query, Text): "
             "Type Text into the relevant html region in Env according to Query; SELECT(Env, Query, Text): Select "
             "the value Text of the relevant selection box in Env according to Query.")


def block(tools: str, task: str) -> str:
    return f"{GROUND_HEAD}{tools}\n\nTask: {task} \n"


def conversation(*turns: str) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]


def line(domain: str, index: int, *turns: str) -> str:
    return json.dumps({"dataset": domain, "id": f"{domain}_{index}", "messages": conversation(*turns)}) + "\n"


MQ_TASK, MQ_S1, MQ_S2 = (MUSIQUE["question"], "Subgoal 1: Answer the question: What is the manufacturer of Walkman?",
                         "Subgoal 2: Answer the question: Who founded Sony?")
MQ_A1 = ("R1 = KnowledgeQuery(Walkman); R2 = ParagraphRetrieve(R1, Query: What is the manufacturer of Walkman?); "
         "R3 = QA([R2], Question: What is the manufacturer of Walkman?)")
MQ_A2 = "R4 = KnowledgeQuery(Sony); R5 = ParagraphRetrieve(R4, Query: Who founded Sony?); " \
        "R6 = QA([R5], Question: Who founded Sony?)"
SQ_TASK = STRATEGYQA["question"]
SQ_S = ("Subgoal 1: Answer the question: How much does a cat weigh?",
        "Subgoal 2: Answer the question: How much does a mouse weigh?",
        "Subgoal 3: Answer the question: Is the answer to Subgoal 1 more than the answer to Subgoal 2?")
SQ_A = ("R1 = KnowledgeQuery(Cat); R2 = ParagraphRetrieve(R1, Query: How much does a cat weigh?); "
        "R3 = QA([R2], Question: How much does a cat weigh?)",
        "R4 = KnowledgeQuery(Mouse); R5 = ParagraphRetrieve(R4, Query: How much does a mouse weigh?); "
        "R6 = QA([R5], Question: How much does a mouse weigh?)",
        "R7 = QA([R3, R6], Question: Is R3 more than R6?)")
WEB_TASK = MIND2WEB["confirmed_task"]
WEB_S = ("Subgoal 1: Type New York into the From field and choose the New York suggestion.",
         "Subgoal 2: Select Economy in the Cabin dropdown.", "Subgoal 3: Click the Search button.")
WEB_A = ("R1 = TYPE(Env, QUERY: Type New York into the From field, TEXT: New York); "
         "R2 = CLICK(R1, QUERY: Choose the New York suggestion)",
         "R3 = SELECT(R2, QUERY: Select Economy in the Cabin dropdown, TEXT: Economy)",
         "R4 = CLICK(R3, QUERY: Click the Search button)")
KEEP, STOP = "No, I will keep planning. ", "Yes, I will stop planning."
GROUNDED_AFTER = " The grounding could be based on the following results:"

# complex_qa files list musique_converted.json before strategyqa_converted.json (sorted file names).
EXPECTED = {
    ("complex_qa", "plan", "iterative"): [
        line("complex_qa", 0, PLAN_PROMPT.format(task=MQ_TASK), MQ_S1,
             "The executed result for Subgoal 1 is Sony. Should we stop planning?", KEEP + MQ_S2,
             "The executed result for Subgoal 2 is Masaru Ibuka. Should we stop planning?", STOP),
        line("complex_qa", 1, PLAN_PROMPT.format(task=SQ_TASK), SQ_S[0],
             "The executed result for Subgoal 1 is A cat can weigh 4 kg. Should we stop planning?", KEEP + SQ_S[1],
             "The executed result for Subgoal 2 is A mouse can weigh 20 g. Should we stop planning?", KEEP + SQ_S[2],
             "The executed result for Subgoal 3 is yes. Should we stop planning?", STOP)],
    ("complex_qa", "ground", "iterative"): [
        line("complex_qa", 0, block(QA_TOOLS, MQ_TASK) + f"Subgoal to be grounded: {MQ_S1}\n", MQ_A1,
             f"Subgoal to be grounded: {MQ_S2}{GROUNDED_AFTER} The execution result for Subgoal 1 is Sony\n", MQ_A2),
        line("complex_qa", 1, block(QA_TOOLS, SQ_TASK) + f"Subgoal to be grounded: {SQ_S[0]}\n", SQ_A[0],
             f"Subgoal to be grounded: {SQ_S[1]}{GROUNDED_AFTER} The execution result for Subgoal 1 is "
             "A cat can weigh 4 kg.\n", SQ_A[1],
             f"Subgoal to be grounded: {SQ_S[2]}{GROUNDED_AFTER} The execution result for Subgoal 1 is "
             "A cat can weigh 4 kg. The execution result for Subgoal 2 is A mouse can weigh 20 g.\n", SQ_A[2])],
    ("complex_qa", "plan", "onetime"): [
        line("complex_qa", 0, PLAN_PROMPT.format(task=MQ_TASK), f"{MQ_S1}; {MQ_S2}"),
        line("complex_qa", 1, PLAN_PROMPT.format(task=SQ_TASK), "; ".join(SQ_S))],
    ("complex_qa", "ground", "onetime"): [
        line("complex_qa", 0, block(QA_TOOLS, MQ_TASK) + f"Subgoals to be grounded: {MQ_S1}; {MQ_S2}\n",
             f"{MQ_A1}; {MQ_A2}"),
        line("complex_qa", 1, block(QA_TOOLS, SQ_TASK) + f"Subgoals to be grounded: {'; '.join(SQ_S)}\n",
             "; ".join(SQ_A))],
    ("web_agent", "plan", "iterative"): [
        line("web_agent", 0, PLAN_PROMPT.format(task=WEB_TASK), WEB_S[0],
             "We have already type New York into the From field and choose the New York suggestion. "
             "Should we stop planning?", KEEP + WEB_S[1],
             "We have already select Economy in the Cabin dropdown. Should we stop planning?", KEEP + WEB_S[2],
             "We have already click the Search button. Should we stop planning?", STOP)],
    ("web_agent", "ground", "iterative"): [
        line("web_agent", 0, block(WEB_TOOLS, WEB_TASK) + f"Subgoal to be grounded: {WEB_S[0]}\n", WEB_A[0],
             f"Subgoal to be grounded: {WEB_S[1]}\n", WEB_A[1], f"Subgoal to be grounded: {WEB_S[2]}\n", WEB_A[2])],
    ("web_agent", "plan", "onetime"): [
        line("web_agent", 0, PLAN_PROMPT.format(task=WEB_TASK), "; ".join(WEB_S))],
    ("web_agent", "ground", "onetime"): [
        line("web_agent", 0, block(WEB_TOOLS, WEB_TASK) + f"Subgoals to be grounded: {'; '.join(WEB_S)}\n",
             "; ".join(WEB_A))],
}

# One line spelled out as bytes, so the JSON encoding itself (ASCII escapes, separators) is pinned too.
WEB_PLAN_ONETIME_BYTES = (
    '{"dataset": "web_agent", "id": "web_agent_0", "messages": [{"role": "user", "content": "Please provide a '
    'reasonable subgoal-based plan to solve the given task.\\nTask: Find a flight from New York to Boston.; Initial '
    'Environment Description: None."}, {"role": "assistant", "content": "Subgoal 1: Type New York into the From '
    'field and choose the New York suggestion.; Subgoal 2: Select Economy in the Cabin dropdown.; Subgoal 3: Click '
    'the Search button."}]}\n')


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, f"{module} {args}: {result.stdout}\n{result.stderr}"
    return result


def annots(data_dir: Path, domain: str, module: str, form: str) -> Path:
    return data_dir / domain / "train_annots" / f"lumos_{domain}_{module}_{form}.jsonl"


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory) -> Path:
    """A ``data/train`` tree built from the hand-made records by the two CLIs."""
    root = tmp_path_factory.mktemp("train")
    sources = {"gsm8k_mini.jsonl": ("maths", [GSM8K]), "strategyqa_mini.json": ("complex_qa", [STRATEGYQA]),
               "musique_mini.json": ("complex_qa", [MUSIQUE]), "train_0.json": ("web_agent", [MIND2WEB])}
    for name, (domain, records) in sources.items():
        path = root / name
        path.write_text(json.dumps(records) if name.endswith(".json") else json.dumps(records[0]) + "\n",
                        encoding="utf-8")
        run_module("data.prompt_convertion", "--domain", domain, "--data_fn", str(path), "--convert_all",
                   "--backend", "rules", "--verify", "--no_progress", cwd=root)
    for domain in ("maths", "complex_qa", "web_agent"):
        for formulation in ("lumos_iterative", "lumos_onetime"):
            run_module("data.process_for_train", "--domain", domain, "--formulation", formulation, cwd=root)
    run_module("data.process_for_train", "--unified", "maths,complex_qa,web_agent", cwd=root)
    return root / "data" / "train"


@pytest.mark.parametrize("domain, module, form", sorted(EXPECTED))
def test_hand_made_records_give_format_lines_byte_for_byte(hand_made, domain, module, form):
    lines = annots(hand_made, domain, module, form).read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines == EXPECTED[domain, module, form]
    assert not (annots(hand_made, domain, "plan", form).with_name(
        f"lumos_{domain}_{form}.skipped.jsonl")).exists()


def test_json_encoding_of_a_line_is_pinned(hand_made):
    assert annots(hand_made, "web_agent", "plan", "onetime").read_text(encoding="utf-8") == WEB_PLAN_ONETIME_BYTES


def test_unified_mixture_concatenates_the_iterative_files_in_domain_order(hand_made):
    for module in ("plan", "ground"):
        expected = "".join(annots(hand_made, domain, module, "iterative").read_text(encoding="utf-8")
                           for domain in ("maths", "complex_qa", "web_agent"))
        unified = annots(hand_made, "unified", module, "iterative").read_text(encoding="utf-8")
        assert unified == expected
        assert [json.loads(row)["id"] for row in unified.splitlines()] == [
            "maths_0", "complex_qa_0", "complex_qa_1", "web_agent_0"]


# --------------------------------------------------------------------------- real data


def check_parses_back(data_dir: Path, domain: str) -> int:
    """Every turn of the four files of ``domain`` parses back; returns the number of conversations."""
    tools = set(vocabulary(domain).tool_names)
    rows = {(module, form): [json.loads(row) for row in annots(data_dir, domain, module, form).read_text().splitlines()]
            for module in ("plan", "ground") for form in ("iterative", "onetime")}
    counts = {key: len(value) for key, value in rows.items()}
    assert len(set(counts.values())) == 1, counts
    for row in rows["plan", "iterative"]:
        replies = [parse_planner_reply(m["content"]) for m in row["messages"][1::2]]
        assert [r.stop for r in replies] == [False] * (len(replies) - 1) + [True]
        assert [r.index for r in replies[:-1]] == list(range(1, len(replies)))
    for row in rows["plan", "onetime"]:
        assert len(row["messages"]) == 2
        assert [k for k, _ in split_onetime_plan(row["messages"][1]["content"])] == list(
            range(1, len(split_onetime_plan(row["messages"][1]["content"])) + 1))
    for form in ("iterative", "onetime"):
        for row in rows["ground", form]:
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * (len(row["messages"]) // 2)
            for message in row["messages"][1::2]:
                actions = parse_actions(message["content"])
                assert actions and {a.tool for a in actions} <= tools, message["content"]
                assert all(a.result is None for a in actions)
    return counts["plan", "iterative"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_files_give_training_files_that_parse_back(shared_data, tmp_path, capsys):
    data_dir = tmp_path / "train"
    real = {"strategyqa/strategyqa_train.json": "complex_qa",
            "musique/musique_ans_train_sample100.hipporag.json": "complex_qa",
            "mind2web/mind2web_train_sample5.openbrowser.json": "web_agent"}
    for relative, domain in real.items():
        status = prompt_convertion.main(["--domain", domain, "--data_fn", str(shared_data / relative), "--convert_all",
                                         "--backend", "rules", "--verify", "--no_progress",
                                         "--output_dir", str(data_dir / domain / "converted")])
        assert status == 0
    for domain in ("complex_qa", "web_agent"):
        for formulation in ("lumos_iterative", "lumos_onetime"):
            assert process_for_train.main(["--domain", domain, "--formulation", formulation,
                                           "--data_dir", str(data_dir)]) == 0
    assert process_for_train.main(["--unified", "complex_qa,web_agent", "--data_dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out, out  # every converted record became a conversation
    assert check_parses_back(data_dir, "complex_qa") == 1977 + 100  # StrategyQA without no_evidence, MuSiQue
    assert check_parses_back(data_dir, "web_agent") == 5
    unified = annots(data_dir, "unified", "plan", "iterative").read_text().splitlines()
    assert len(unified) == 1977 + 100 + 5
