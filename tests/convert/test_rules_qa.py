"""Rule-based complex-QA plans: real StrategyQA/MuSiQue records, and hand-made cases."""

from __future__ import annotations

import pytest

from lumos.convert.rules_qa import (RuleConversionError, complex_qa_plan, musique_plan, plain_argument,
                                    relation_question, strategyqa_plan)
from lumos.convert.sources import SourceTask, read_source
from lumos.convert.validate import validate_complex_qa
from lumos.format import parse_plan, render_plan


def _task(source, raw, answer):
    return SourceTask(str(raw.get("id", raw.get("qid"))), raw["question"], "", answer, raw, source)


MUSIQUE = {
    "id": "m1", "question": "Who founded the publisher of Journal X?", "answer": "Ann Lee",
    "paragraphs": [{"idx": 0, "title": "Journal X", "paragraph_text": "Journal X is published\nby Acme Press."},
                   {"idx": 1, "title": "Acme Press", "paragraph_text": "Acme Press was founded by Ann Lee (1900)."}],
    "question_decomposition": [
        {"question": "Journal X >> publisher", "answer": "Acme Press", "paragraph_support_idx": 0},
        {"question": "Who founded #1 ?", "answer": "Ann Lee", "paragraph_support_idx": 1}],
}


def test_musique_hops_become_cited_retrieval_and_qa():
    plan = musique_plan(_task("musique", MUSIQUE, "Ann Lee"))
    assert render_plan(plan) == (
        "Subgoal 1: Answer the question: What is the publisher of Journal X?\n"
        "Action 1-1: R1 = KnowledgeQuery(Journal X) = WikipediaPage(Journal X)\n"
        "Action 1-2: R2 = ParagraphRetrieve(R1, Query: What is the publisher of Journal X?) = "
        "Journal X is published by Acme Press.\n"
        "Action 1-3: R3 = QA([R2], Question: What is the publisher of Journal X?) = Acme Press\n"
        "\n"
        "Subgoal 2: Answer the question: Who founded Acme Press?\n"
        "Action 2-1: R4 = KnowledgeQuery(Acme Press) = WikipediaPage(Acme Press)\n"
        "Action 2-2: R5 = ParagraphRetrieve(R4, Query: Who founded Acme Press?) = "
        "Acme Press was founded by Ann Lee (1900).\n"
        "Action 2-3: R6 = QA([R5], Question: Who founded Acme Press?) = Ann Lee")


STRATEGY = {
    "qid": "s1", "question": "Are more people related to Genghis Khan than Julius Caesar?", "answer": True,
    "facts": ["Julius Caesar had three children.", "Genghis Khan had sixteen children."],
    "decomposition": ["How many kids did Julius Caesar have?", "How many kids did Genghis Khan have?",
                      "Is #2 greater than #1?"],
    "evidence": [[[["Julius Caesar-75"]], [["Genghis Khan-17", "Genghis Khan-3"]], ["operation"]]],
}


def test_strategyqa_operation_step_refers_to_earlier_answers_and_ends_with_gold():
    plan = strategyqa_plan(_task("strategyqa", STRATEGY, "yes"))
    actions = plan.actions
    assert [a.tool for a in actions] == ["KnowledgeQuery", "ParagraphRetrieve", "QA"] * 2 + ["QA"]
    assert actions[3].args == "Genghis Khan" and actions[4].result == "Genghis Khan had sixteen children."
    assert actions[2].result == "Julius Caesar had three children."
    assert actions[-1].render() == "R7 = QA([R6, R3], Question: Is R6 greater than R3?) = yes"
    assert plan.subgoals[-1].text == "Answer the question: Is the answer to Subgoal 2 greater than the answer to Subgoal 1?"
    assert validate_complex_qa(render_plan(plan)) == []


def test_strategyqa_uses_paragraph_texts_when_given():
    paragraphs = {"Julius Caesar-75": "Caesar had a daughter, Julia.", "Genghis Khan-17": "Many sons.",
                  "Genghis Khan-3": "And daughters."}
    plan = strategyqa_plan(_task("strategyqa", STRATEGY, "yes"), paragraphs)
    assert [a.result for a in plan.actions if a.tool == "ParagraphRetrieve"] == \
        ["Caesar had a daughter, Julia.", "Many sons. And daughters."]


def test_unusable_inputs_raise_typed_errors():
    with pytest.raises(RuleConversionError, match="no_evidence"):
        strategyqa_plan(_task("strategyqa", dict(STRATEGY, evidence=[[["no_evidence"]] * 3]), "yes"))
    forward = dict(STRATEGY, decomposition=["Is #2 big?", "b?", "c?"])
    with pytest.raises(RuleConversionError, match="refers to #2"):
        strategyqa_plan(_task("strategyqa", forward, "yes"))
    with pytest.raises(RuleConversionError, match="no complex-QA rules"):
        complex_qa_plan(_task("gsm8k", {"id": "g", "question": "q"}, "1"))


def test_free_text_is_made_safe_for_unquoted_arguments():
    assert plain_argument('Who sang "Hello (live"?') == "Who sang 'Hello live'?"
    assert plain_argument("a) b (c) d(") == "a b (c) d"
    assert relation_question("Johnnycake, West Virginia >> located in the administrative territorial entity") == \
        "In which administrative territorial entity is Johnnycake, West Virginia located?"
    question = dict(MUSIQUE, question_decomposition=[
        {"question": 'What is "Up (film"?', "answer": "A film", "paragraph_support_idx": 0}])
    plan = musique_plan(_task("musique", question, "A film"))
    assert parse_plan(render_plan(plan)) == plan


@pytest.mark.shared_data
@pytest.mark.parametrize("relative, expected", [
    ("strategyqa/strategyqa_train.json", 1977),
    ("musique/musique_ans_train_sample100.hipporag.json", 100),
])
def test_every_usable_real_record_converts_round_trips_and_validates(shared_data, relative, expected):
    converted = 0
    for item in read_source(shared_data / relative):
        if not isinstance(item, SourceTask):
            continue
        plan = complex_qa_plan(item)
        text = render_plan(plan)
        assert parse_plan(text) == plan, item.id
        assert validate_complex_qa(text) == [], item.id
        assert plan.actions[-1].result == item.answer
        converted += 1
    assert converted == expected


@pytest.mark.shared_data
def test_musique_real_record_cites_titles_and_substitutes_answers(shared_data):
    first = next(iter(read_source(shared_data / "musique" / "musique_ans_train_sample100.hipporag.json")))
    plan = complex_qa_plan(first)
    assert plan.actions[0].render() == ("R1 = KnowledgeQuery(Journal of Psychotherapy Integration) = "
                                        "WikipediaPage(Journal of Psychotherapy Integration)")
    assert plan.actions[2].render() == ("R3 = QA([R2], Question: What company published Journal of "
                                        "Psychotherapy Integration?) = American Psychological Association")
    assert plan.subgoals[1].actions[1].args == \
        "R4, Query: Who was the first president of American Psychological Association?"
    assert "G. Stanley Hall" in plan.subgoals[1].actions[1].result
