"""The released complex-QA execution (``OriginalQAExecutor``) on a local corpus, and
``run_eval --prompt_style original --scoring original`` end to end on it (no shared data needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lumos.llm.scripted import ScriptedGenerator
from lumos.tools.qa import (ActionContext, OriginalActionFailed, original_executor, page_sentences, qa_toolbox)
from lumos.tools.engines.retrieval import LocalCorpus

CORPUS = [
    {"title": "Ed Wood", "text": "Edward Davis Wood Jr. (October 10, 1924 - December 10, 1978) was an American "
                                 "filmmaker, actor and author. He made low-budget films in the 1950s."},
    {"title": "Ed Wood", "text": "Short paragraph."},  # ten words or fewer: the original skipped it
    {"title": "Ed Wood (film)", "text": "Ed Wood is a 1994 American biographical comedy-drama film directed and "
                                        "produced by Tim Burton."},
    {"title": "Scott Derrickson", "text": "Scott Derrickson (born July 16, 1966) is an American director, "
                                          "screenwriter and producer. He lives in Los Angeles, California."},
]


def _chat_rules(*pairs):
    return ScriptedGenerator(list(pairs))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in CORPUS))
    return str(path)


def test_page_sentences_reads_pages_as_the_original():
    assert page_sentences(["One two three four five six seven eight nine ten eleven. Second one.", "Too short."],
                          40) == ["One two three four five six seven eight nine ten eleven.", "Second one.."]
    assert page_sentences([], 40) == []
    assert len(page_sentences([" ".join(["w"] * 11) + ". "] * 1 + [". ".join(["a b c d e f g h i j k"] * 30)], 15)) == 15


def test_local_corpus_lookup_is_an_article_or_a_title_list(corpus, tmp_path):
    source = LocalCorpus(corpus, cache_dir=tmp_path / "cache")
    page = source.lookup("ed wood")
    assert page.title == "Ed Wood" and len(page.paragraphs) == 2 and not page.candidates
    listing = source.lookup("Tim Burton biographical film")
    assert listing.title is None and listing.candidates[0] == "Ed Wood (film)"
    assert source.lookup("zzzz qqqq") == type(page)(None)  # nothing at all: an empty page


def test_original_execution_forms_and_failures(corpus, tmp_path):
    qa = _chat_rules((r"Question: What is the nationality of Ed Wood\?\nContext: Evidence 1: Edward", "Answer: American"),
                     (r"Question: Who\?\nContext: ", "No answer"),
                     (r"^Please answer the following question\. Please answer with one brief entity, beginning "
                      r"with 'Answer: '\. If the answer", "Answer: nobody"),
                     (r"Must answer yes/no\.\nContext", "No answer"),
                     (r"^Please answer the following question\. Please answer with one brief entity, beginning "
                      r"with 'Answer: '\.\n\nQuestion: .* Must answer yes/no\.", "Answer: no"))
    box = qa_toolbox(corpus=corpus, qa_generator=qa, cache_dir=str(tmp_path / "cache"))
    hotpot, strategy = original_executor(box, "hotpotqa"), original_executor(box, "strategyqa")
    results: dict = {}
    plain = ActionContext(question="Task?")

    name, value = hotpot.execute("KnowledgeQuery", "Ed Wood", "R1", results, plain)
    assert name == "R1" and value == [
        "Ed Wood *** Edward Davis Wood Jr.",
        "Ed Wood *** (October 10, 1924 - December 10, 1978) was an American filmmaker, actor and author.",
        "Ed Wood *** He made low-budget films in the 1950s.."]
    results[name] = value
    name, value = hotpot.execute("ParagraphRetrieve", "R1, Query: What is the nationality of Ed Wood?", "R2",
                                 results, plain)
    assert value.startswith("Evidence 1: ") and value.count("\nEvidence ") == 2 and value.endswith("\n")
    results[name] = value
    name, value = hotpot.execute("QA", "[R2], Question: What is the nationality of Ed Wood?", "R3", results, plain)
    assert value == "Question: What is the nationality of Ed Wood?; Answer: American"
    results[name] = value
    # "No answer" with context: asked again without it
    _, value = hotpot.execute("QA", "[R3], Question: Who?", "R4", results, plain)
    assert value == "Question: Who?; Answer: nobody"
    # StrategyQA's last onetime action must answer yes/no (and is forced to when it says "No answer")
    last = ActionContext(question="Task?", index=3, last_of_onetime=True)
    _, value = strategy.execute("QA", "[R3], Question: Is he French?", "R5", results, last)
    assert value == "Question: Is he French? Must answer yes/no.; Answer: no"
    # errors the original caught: "" under "", the task goes on
    assert hotpot.execute("QA", "[R9], Question: x?", "R6", results, plain) == ("", "")
    assert hotpot.execute("QA", "[R1], Question: x?", "R6", results, plain) == ("", "")  # a list as context
    assert hotpot.execute("ParagraphRetrieve", "R3, Query: x?", "R6", results, plain) == ("", "")  # text, not a list
    assert hotpot.execute("ParagraphRetrieve", "R1", "R6", results, plain) == ("", "")  # no ", Query: "
    # actions the original's execute returned nothing for: the task loses its results
    for tool in ("Code", "Compare"):
        with pytest.raises(OriginalActionFailed):
            hotpot.execute(tool, "R1", "R6", results, plain)
    # QA and ParagraphRetrieve questions keep variable names as written (only KnowledgeQuery substitutes)
    assert qa.calls[0].count("What is the nationality of Ed Wood?") == 1


def test_decide_final_answer_over_the_question_results(corpus, tmp_path):
    qa = ScriptedGenerator(lambda content: "Answer: yes")
    box = qa_toolbox(corpus=corpus, qa_generator=qa, cache_dir=str(tmp_path / "cache"))
    results = {"R1": ["a *** b"], "R2": "Evidence 1: b\n", "R3": "Question: q1?; Answer: A", "": "",
               "R4": "Question: q2?; Answer: B"}
    assert original_executor(box, "strategyqa").decide_final_answer(results, "Same?") == \
        "Question: Same? Must answer yes/no.; Answer: yes"
    assert qa.calls[-1].endswith("Question: Same? Must answer yes/no.\nContext: Question: q1?; Answer: A; "
                                 "Question: q2?; Answer: B;\n")
    assert original_executor(box, "hotpotqa").decide_final_answer(results, "Same?") == "Question: Same?; Answer: yes"


def test_run_eval_original_mode_on_a_local_corpus(corpus, tmp_path, repo_root):
    """The command line end to end: original prompts reach the modules, the QA model gets the original's
    chat prompt, decide_final_ans runs at the stop, and --scoring original reads its answer."""
    data = tmp_path / "hotpotqa"
    data.mkdir()
    (data / "test.json").write_text(json.dumps([{"question": "What is the nationality of Ed Wood?",
                                                 "answer": "American"}]))
    ground = ("R1 = KnowledgeQuery(Ed Wood); R2 = ParagraphRetrieve(R1, Query: What is the nationality of Ed Wood?); "
              "R3 = QA([R2], Question: What is the nationality of Ed Wood?)")
    rules = {
        "planner.json": [[r"Subgoal 1 is Question: What is the nationality of Ed Wood\?; Answer: American\. Should we "
                          r"stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."],
                         [r"(?s)^<\|user\|>\nPlease provide .*Initial Environment Description: None\.\n<\|assistant\|>\n$",
                          "Subgoal 1: Find his nationality."]],
        "grounder.json": [[r"(?s)^<\|user\|>\nPlease ground .*\nTask: What is the nationality of Ed Wood\? \n"
                           r"Subgoal to be grounded: Subgoal 1: Find his nationality\.\n<\|assistant\|>\n$", ground]],
        "qa.json": [[r"^Please answer the following question according to the context\..*\n\nQuestion: What is the "
                     r"nationality of Ed Wood\?\nContext: (Evidence 1: |Question: )", "Answer: American"]],
    }
    for name, pairs in rules.items():
        (tmp_path / name).write_text(json.dumps({"rules": pairs}))
    save = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "eval.hotpotqa.run_eval", "--data_dir", str(data), "--save_dir",
                           str(save), "--planner", f"scripted:{tmp_path / 'planner.json'}",
                           "--grounder", f"scripted:{tmp_path / 'grounder.json'}", "--qa_model",
                           f"scripted:{tmp_path / 'qa.json'}", "--corpus", corpus, "--prompt_style", "original",
                           "--scoring", "original"], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["em"] == 1.0 and metrics["scoring"] == "original" and metrics["status"] == {"finished": 1}
    (record,) = [json.loads(line) for line in (save / "predictions.jsonl").read_text().splitlines()]
    assert record["original"]["results"]["final_ans"] == "Question: What is the nationality of Ed Wood?; Answer: American"
    assert record["original_prediction"] == "American"


def test_a_task_not_stopped_within_ten_rounds_is_step_limit_and_scores_zero(corpus, tmp_path):
    """Five planner and five grounder calls, as the original's ``range(10)``; no final answer is asked for."""
    from eval.hotpotqa.benchmark import BENCHMARK
    from eval.hotpotqa.original import OriginalQAProtocol
    from eval.runner import Example
    from lumos.agent import Agent

    planner = ScriptedGenerator(lambda prompt: f"No, I will keep planning. Subgoal {prompt.count('<|assistant|>')}: "
                                               "Find his nationality.")
    grounder = ScriptedGenerator(lambda prompt: "R1 = KnowledgeQuery(Ed Wood); R2 = ParagraphRetrieve(R1, Query: "
                                                "Nationality?); R3 = QA([R2], Question: Nationality?)")
    qa = ScriptedGenerator(lambda content: "Answer: American")
    box = qa_toolbox(corpus=corpus, qa_generator=qa, cache_dir=str(tmp_path / "cache"))
    agent = Agent(planner, grounder, box, domain="complex_qa", protocol=OriginalQAProtocol("hotpotqa"))
    (episode,) = agent.run([("0", "What is the nationality of Ed Wood?")])
    assert (len(planner.calls), len(grounder.calls)) == (5, 5)
    assert episode.status == "step_limit" and "final_ans" not in episode.original["results"]
    assert len(qa.calls) == 5  # one QA per executed subgoal, none for a final answer
    gold = Example("0", "What is the nationality of Ed Wood?", "American")
    assert BENCHMARK.score_original(episode, gold, "lumos_iterative") == {"em": 0.0}
    # later grounding turns carry the Answer: parts under the planner's labels, in string order
    assert grounder.calls[-1].endswith("The execution result for Subgoal 1 is American The execution result for "
                                       "Subgoal 2 is American The execution result for Subgoal 3 is American The "
                                       "execution result for Subgoal 4 is American\n<|assistant|>\n")


@pytest.mark.slow
def test_dpr_reader_ranker_scores_passages_ten_at_a_time(tmp_path):
    """The original's relevance model on a tiny random DPR reader: chunking never changes a passage's
    score, titles count, and Evidence lines follow the scores."""
    torch = pytest.importorskip("torch")
    from transformers import DPRConfig, DPRReader, DPRReaderTokenizer

    from lumos.tools.engines.retrieval import DPRReaderRanker, make_ranker

    words = "ed wood american filmmaker actor nationality what is the of born film director he was a".split()
    vocab = {word: i for i, word in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    DPRReaderTokenizer(vocab=vocab).save_pretrained(tmp_path / "dpr")
    torch.manual_seed(0)
    DPRReader(DPRConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=512, initializer_range=1.0)
              ).save_pretrained(tmp_path / "dpr")
    ranker = make_ranker(f"dpr:{tmp_path / 'dpr'}")
    assert isinstance(ranker, DPRReaderRanker)
    texts = [" ".join(words[i:i + 5]) for i in range(12)]
    titles = ["Ed Wood"] * 6 + ["Film"] * 6
    scores = ranker.scores("what is the nationality of ed wood", texts, titles=titles)
    one_by_one = DPRReaderRanker(str(tmp_path / "dpr"), chunk=1)
    assert scores == pytest.approx(one_by_one.scores("what is the nationality of ed wood", texts, titles=titles),
                                   abs=1e-5)
    assert len(set(scores)) == len(scores)
    assert scores != pytest.approx(ranker.scores("what is the nationality of ed wood", texts), abs=1e-6)

    box = qa_toolbox(source=object(), ranker=ranker)
    evidence = original_executor(box, "hotpotqa").evidence("what is the nationality of ed wood", texts,
                                                           titles=titles)
    best = sorted(range(12), key=lambda i: -scores[i])[:5]
    assert evidence == "".join(f"Evidence {k}: {texts[i]}\n" for k, i in enumerate(best, start=1))


def test_a_grounding_turn_keeps_the_answer_as_qa_gave_it(corpus, tmp_path):
    """The original appended the Answer: part raw, trailing whitespace included; the planner's value is stripped."""
    from eval.hotpotqa.original import OriginalQAProtocol
    from lumos.agent import Agent

    planner = ScriptedGenerator(lambda prompt: "Yes, I will stop planning." if prompt.count("<|assistant|>") > 2
                                else f"No, I will keep planning. Subgoal {prompt.count('<|assistant|>')}: Find it.")
    grounder = ScriptedGenerator(lambda prompt: "R1 = KnowledgeQuery(Ed Wood); R2 = ParagraphRetrieve(R1, Query: "
                                                "Nationality?); R3 = QA([R2], Question: Nationality?)")
    qa = ScriptedGenerator(lambda content: "Answer: American \n")
    box = qa_toolbox(corpus=corpus, qa_generator=qa, cache_dir=str(tmp_path / "cache"))
    agent = Agent(planner, grounder, box, domain="complex_qa", protocol=OriginalQAProtocol("hotpotqa"))
    (episode,) = agent.run([("0", "What is the nationality of Ed Wood?")])
    assert episode.status == "finished"
    assert grounder.calls[1].endswith("The execution result for Subgoal 1 is American \n\n<|assistant|>\n")
    assert "The executed result for Subgoal 1 is Question: Nationality?; Answer: American. Should we stop" \
        in planner.calls[1]


def test_wikipedia_lookup_is_an_article_or_search_titles_on_a_loopback_api():
    """WikipediaAPI.lookup against a MediaWiki-shaped server on 127.0.0.1: the article when the title exists,
    else the first five search titles (what the original's index.php?search= page served)."""
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lumos.tools.engines.retrieval import WikipediaAPI

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server hook name
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
            if query.get("list") == "search":
                body = {"query": {"search": [{"title": f"Kiss and Tell {i}"} for i in range(int(query["srlimit"]))]}}
            elif query.get("titles") == "Ed Wood":
                page = {"title": "Ed Wood"}
                if query.get("prop") == "extracts":
                    page["extract"] = "Edward Davis Wood Jr. was an American filmmaker.\n== Career ==\nHe made films."
                body = {"query": {"pages": [page]}}
            else:
                body = {"query": {"pages": [{"title": query.get("titles"), "missing": True}]}}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = WikipediaAPI(endpoint=f"http://127.0.0.1:{server.server_address[1]}/w/api.php")
        page = api.lookup("Ed Wood")
        assert page.title == "Ed Wood" and page.paragraphs == ("Edward Davis Wood Jr. was an American filmmaker.",
                                                               "He made films.") and not page.candidates
        listing = api.lookup("Kiss and Tell")
        assert listing.title is None and listing.candidates == tuple(f"Kiss and Tell {i}" for i in range(5))
    finally:
        server.shutdown()
        server.server_close()
