"""Complex-QA tools on the argument conventions of the converted plans, and the on-disk index cache."""

import pytest

from lumos.format import parse_action
from lumos.llm.scripted import ScriptedGenerator
from lumos.tools.base import ToolError
from lumos.tools.qa import qa_toolbox
from lumos.tools.engines.retrieval import LocalCorpus


def test_rules_qa_conventions_execute(scripts, tmp_path):
    corpus = scripts.write_corpus(tmp_path / "corpus.jsonl")
    qa = ScriptedGenerator(scripts.QA_MODEL)
    variables = {}
    with qa_toolbox(corpus=corpus, qa_generator=qa, cache_dir=str(tmp_path / "cache")) as box:
        run = lambda text: box.execute(parse_action(text), variables)  # noqa: E731
        assert run("R1 = KnowledgeQuery(ed wood)") == "WikipediaPage(Ed Wood)"  # exact title, any case
        assert run("R2 = ParagraphRetrieve(R1, Query: What is the nationality of Ed Wood?)").startswith("Edward Davis")
        assert run("R3 = QA([R2], Question: What is the nationality of Ed Wood?)") == "American"
        assert run("R4 = QA([], Question: Who knows?)") == "No answer"
        assert run("R5 = KnowledgeQuery(capital city of Japan)") == "WikipediaPage(Tokyo)"  # BM25 when no title
        assert run("R6 = Calculator(2 * 21)") == "42"
        with pytest.raises(ToolError, match="undefined variable"):
            run("R7 = QA([R9], Question: x?)")
        with pytest.raises(ToolError, match="no page matches"):
            run("R7 = KnowledgeQuery(zzzz qqqq)")


def test_index_is_built_once_and_keyed_by_the_corpus_hash(scripts, tmp_path):
    corpus = scripts.write_corpus(tmp_path / "corpus.jsonl")
    first = LocalCorpus(corpus, cache_dir=tmp_path / "cache")
    assert first.find_page("Japan capital") == "Tokyo" and first.built_index
    second = LocalCorpus(corpus, cache_dir=tmp_path / "cache")
    assert second.find_page("Japan capital") == "Tokyo" and not second.built_index
    with open(corpus, "a") as handle:
        handle.write('{"title": "Kyoto", "text": "Kyoto was the old capital of Japan."}\n')
    third = LocalCorpus(corpus, cache_dir=tmp_path / "cache")
    assert third.find_page("Kyoto") == "Kyoto" and third.built_index and third.index_dir != first.index_dir


def test_without_a_source_knowledge_query_is_a_tool_error():
    with qa_toolbox() as box:
        with pytest.raises(ToolError, match="no knowledge source"):
            box.execute(parse_action("R1 = KnowledgeQuery(Paris)"), {})
