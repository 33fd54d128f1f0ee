"""HotpotQA and StrategyQA under ``--prompt_style original`` / ``--scoring original`` against the reference
transcripts of the released evaluation (``lumos_reference/B_eval``, made by running the original code).

The original's stand-ins are re-created here from each transcript's own records: the planner and the
grounder reply what the transcript scripted for each prompt (an unforeseen prompt is a generation
error), the QA model and the judge answer what the transcript's chat records say, the fake Wikipedia
serves the pages its KnowledgeQuery records returned, and the "DPR" ranker orders paragraphs as its
ParagraphRetrieve records did. What runs is our QA toolbox, our agent loop with the QA protocol, and
our scoring: the prompts each module receives, the tool calls, the predictions and the per-example
scores must be the recorded ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.hotpotqa.benchmark import BENCHMARK as HOTPOTQA
from eval.hotpotqa.original import OriginalQAProtocol
from eval.strategyqa.benchmark import BENCHMARK as STRATEGYQA
from lumos.agent import Agent
from lumos.llm.scripted import ScriptedGenerator
from lumos.metrics import judge_accuracy
from lumos.tools.qa import qa_toolbox
from lumos.tools.engines.retrieval import PageLookup

BENCHMARKS = {"hotpotqa": HOTPOTQA, "strategyqa": STRATEGYQA}
CASES = [(bench, formulation) for bench in BENCHMARKS for formulation in ("lumos_iterative", "lumos_onetime")]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(shared_data) -> Path:
    folder = shared_data / "lumos_reference" / "B_eval"
    if not folder.is_dir():
        pytest.skip(f"reference transcripts {folder} are absent")
    return folder


# --------------------------------------------------------------------------- stand-ins from the records


class FakeWikipedia:
    """Pages as the transcript's KnowledgeQuery records returned them (sentences joined back into one
    paragraph, which our reader splits again), title lists for search-result pages, nothing otherwise."""

    def __init__(self, records: list[dict]):
        self.pages: dict[str, PageLookup] = {}
        for record in records:
            for call in record["calls"]:
                if call["type"] == "call" and call["fn"] == "QAActions.KnowledgeQuery":
                    self.pages[call["args"][0]] = self._page(call["args"][0], call["returned"])
        self.asked: list[str] = []

    @staticmethod
    def _page(query: str, returned) -> PageLookup:
        if isinstance(returned, list):
            return PageLookup(None, candidates=tuple(returned))
        if not returned:
            return PageLookup(None)
        # each recorded sentence is "<piece>." of a page cut at ". ": joining the pieces with ". " is the page
        pieces = [sentence.strip()[:-1] for sentence in returned.split("*****")]
        return PageLookup(query, (". ".join(pieces),))

    def lookup(self, query: str) -> PageLookup:
        self.asked.append(query)
        if query not in self.pages:
            raise AssertionError(f"the original never looked up {query!r}")
        return self.pages[query]

    def find_page(self, query: str):
        raise AssertionError("original mode looks pages up with lookup()")

    def paragraphs(self, title: str):
        raise AssertionError("original mode looks pages up with lookup()")


class RecordedRanker:
    """Relevance that ranks each recorded (question, paragraphs) call's evidence in the recorded order."""

    def __init__(self, records: list[dict]):
        self.orders: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for record in records:
            for call in record["calls"]:
                if call["type"] == "call" and call["fn"] == "QAActions.ParagraphRetrieve":
                    args = call["args"][0]
                    evidence = [line.split(": ", 1)[1] for line in call["returned"].split("\n") if line]
                    self.orders[(args["question"], tuple(args["texts"]))] = evidence

    def scores(self, query: str, texts: list[str]) -> list[float]:
        order = self.orders.get((query, tuple(texts)))
        if order is None:
            raise AssertionError(f"the original never ranked paragraphs for {query!r}")
        scores, used = [], set()
        for i, text in enumerate(texts):
            rank = next((r for r, t in enumerate(order) if t == text and r not in used), None)
            if rank is not None:
                used.add(rank)
            scores.append(100.0 - rank if rank is not None else -float(i))
        return scores


def _chat_model(records: list[dict], kinds: tuple[str, ...], default: str | None = None) -> ScriptedGenerator:
    """Replies of the transcript's chat records of ``kinds``, keyed by the one user message."""
    table: dict[str, str] = {}
    for record in records:
        for call in record["calls"]:
            if call["type"] == "tool" and call.get("kind") in kinds:
                content = call["messages"][0]["content"]
                assert table.get(content, call["reply"]) == call["reply"]
                table[content] = call["reply"]

    def reply(content: str) -> str:
        if content not in table:
            if default is not None:
                return default
            raise LookupError(f"the original never asked {content[:300]!r}")
        return table[content]

    return ScriptedGenerator(reply)


def _module(records: list[dict], module: str, default: str | None = None) -> ScriptedGenerator:
    """The planner or grounder: each recorded prompt gets its scripted reply (the whole reply, newlines
    included; the loop cuts at the first newline as the original's generate_completions did);
    ``default`` answers prompts the original never sent (after it crashed)."""
    table: dict[str, str] = {}
    for record in records:
        for call in record["calls"]:
            if call["type"] == "lm" and call["module"] == module:
                assert table.get(call["prompt"], call["scripted_reply"]) == call["scripted_reply"]
                table[call["prompt"]] = call["scripted_reply"]

    def reply(prompt: str) -> str:
        if prompt not in table:
            if default is not None:
                return default
            raise LookupError(f"unrecorded {module} prompt, ending {prompt[-400:]!r}")
        return table[prompt]

    return ScriptedGenerator(reply)


def _expected_prompts(record: dict, module: str) -> list[str]:
    """What the original sent the module for this example while it was still running."""
    return [call["prompt"] for call in record["calls"]
            if call["type"] == "lm" and call["module"] == module and not call["already_stopped_before_call"]]


def _recorded_score(record: dict, bench: str) -> float:
    score = record["score"]
    return float(bool(score.get("em" if bench == "hotpotqa" else "correct")))


def _replay(records: list[dict], bench: str, formulation: str):
    onetime = formulation == "lumos_onetime"
    planner, grounder = _module(records, "plan"), _module(records, "ground")
    wiki = FakeWikipedia(records)
    toolbox = qa_toolbox(source=wiki, qa_generator=_chat_model(records, ("qa_context", "qa_nocontext", "qa_forced")),
                         ranker=RecordedRanker(records))
    protocol = OriginalQAProtocol(bench, onetime=onetime)
    agent = Agent(planner, grounder, toolbox, domain="complex_qa", formulation="onetime" if onetime else "iterative",
                  protocol=protocol)
    episodes = agent.run([(str(r["example"]), r["question"]) for r in records])
    return episodes, planner, grounder


def _prompts_for(generator: ScriptedGenerator, question: str) -> list[str]:
    markers = (f"\nTask: {question}; Initial Environment Description", f"\nTask: {question} \n")
    return [prompt for prompt in generator.calls if any(marker in prompt for marker in markers)]


# --------------------------------------------------------------------------- the tests


@pytest.mark.shared_data
@pytest.mark.parametrize("bench,formulation", CASES)
def test_original_mode_sends_the_recorded_prompts_and_scores_as_recorded(reference, shared_data, bench, formulation):
    records = _records(reference / bench / f"{formulation}.transcripts.jsonl")
    # our benchmark reader gives the questions and answers the original read from the same file
    examples = BENCHMARKS[bench].load(shared_data / "eval" / bench / "test.json")[:len(records)]
    assert [(e.question, str(e.answer)) for e in examples] == [(r["question"], r["answer"]) for r in records]

    episodes, planner, grounder = _replay(records, bench, formulation)
    for record, episode in zip(records, episodes):
        for module, generator in (("plan", planner), ("ground", grounder)):
            sent = _prompts_for(generator, record["question"])
            expected = _expected_prompts(record, module)
            assert sent == expected, f"example {record['example']} ({record['cases']}): {module} prompts differ"
        # the original's results table, value for value (lists for KnowledgeQuery)
        final = record["final_state"]["results"]
        ours = episode.original["results"]
        assert ours == final, f"example {record['example']}: results table differs"
        if formulation == "lumos_iterative":
            assert episode.original["subgoals"] == record["final_state"]["subgoals"][:len(episode.original["subgoals"])]
        score = BENCHMARKS[bench].score_original(episode, examples[int(record["example"])], formulation)
        metric = "em" if bench == "hotpotqa" else "accuracy"
        assert score[metric] == _recorded_score(record, bench), f"example {record['example']} ({record['cases']})"
        if record["score"].get("pred") is not None:  # the answer the original read is our prediction too
            assert episode.prediction == record["score"]["pred"]
        # a task finishes exactly when the original kept its results to the end and stopped in time
        kept = final is not None and record.get("stopped") is not False
        assert (episode.status == "finished") == kept, (episode.status, episode.error)


@pytest.mark.shared_data
@pytest.mark.parametrize("formulation", ["lumos_iterative", "lumos_onetime"])
def test_original_judge_prompt_and_verdicts(reference, formulation):
    records = _records(reference / "hotpotqa" / f"{formulation}.transcripts.jsonl")
    judge = _chat_model(records, ("judge",))
    judged = [(r["question"], r["score"]["pred"], r["answer"], r["score"]["llm_judge"]) for r in records
              if r["score"].get("written_to_predictions_file")]
    assert judged
    scores = judge_accuracy(judge, [q for q, *_ in judged], [p for _, p, *_ in judged], [a for *_, a, _ in judged],
                            style="original")
    assert scores == [float(verdict) for *_, verdict in judged]


# --------------------------------------------------------------------------- the whole run_eval path


RUN_CASES = [(bench, formulation) for bench in BENCHMARKS
             for formulation in ("lumos_iterative", "lumos_onetime", "cot", "direct")
             if (bench, formulation) != ("strategyqa", "cot")]  # the original cot crashed before any prompt


@pytest.mark.shared_data
@pytest.mark.parametrize("bench,formulation", RUN_CASES)
def test_run_eval_original_replays_the_reference_run(reference, shared_data, tmp_path, monkeypatch, bench,
                                                      formulation):
    """``run_eval --prompt_style original --scoring original`` on the original's own eval file: the
    prompts, per-example scores and the judge's count are the reference run's (its first examples)."""
    import eval.runner as runner

    records = _records(reference / bench / f"{formulation}.transcripts.jsonl")
    lumos = formulation.startswith("lumos_")
    models = {"scripted:plan": _module(records, "plan" if lumos else formulation),
              "scripted:ground": _module(records, "ground"),
              "scripted:qa": _chat_model(records, ("qa_context", "qa_nocontext", "qa_forced")),
              "scripted:judge": _chat_model(records, ("judge",))}
    monkeypatch.setattr(runner, "load_generator", lambda spec, config: models[spec])
    monkeypatch.setattr(runner, "check_generator_spec", lambda spec, flag: None)  # the specs name models above
    monkeypatch.setattr(runner._Modules, "make_toolbox", lambda self: qa_toolbox(
        source=FakeWikipedia(records), qa_generator=self.generator(self.config.qa_model),
        ranker=RecordedRanker(records)))
    args = ["--data_dir", str(shared_data / "eval" / bench), "--save_dir", str(tmp_path / "out"),
            "--max_num_examples", str(len(records)), "--eval_batch_size", str(len(records)),
            "--formulation", formulation, "--prompt_style", "original", "--scoring", "original",
            "--planner", "scripted:plan"]
    if lumos:
        args += ["--grounder", "scripted:ground", "--qa_model", "scripted:qa", "--wikipedia"]
    if bench == "hotpotqa":
        args += ["--judge", "scripted:judge"]
    metrics = runner.evaluate(runner.parse_config(BENCHMARKS[bench], args), BENCHMARKS[bench])

    sent = models["scripted:plan"].calls + models["scripted:ground"].calls
    expected = [call["prompt"] for record in records for call in record["calls"]
                if call["type"] == "lm" and not call["already_stopped_before_call"]]
    assert sorted(sent) == sorted(expected)
    metric = "em" if bench == "hotpotqa" else "accuracy"
    assert metrics["scoring"] == "original" and metrics["num_examples"] == len(records)
    assert metrics[metric] == pytest.approx(sum(_recorded_score(r, bench) for r in records) / len(records))
    saved = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["scores"][metric] for r in saved] == [_recorded_score(r, bench) for r in records]
    if bench == "hotpotqa":
        written = [r["score"]["pred"] if r["score"].get("written_to_predictions_file") else None for r in records]
        assert [r["original_prediction"] for r in saved] == written
        judged = sum(r["score"].get("llm_judge") or 0 for r in records)
        assert metrics["judge_accuracy"] == pytest.approx(judged / len(records))


def test_strategyqa_original_scoring_rules():
    """The released StrategyQA rules on replies the reference run does not cover."""
    from lumos.episode import Episode, Step
    from eval.runner import Example

    def episode(reply: str | None = None, final: str | None = None, formulation: str = "cot") -> Episode:
        ep = Episode(id="x", task="q?", formulation=formulation, status="finished")
        if reply is not None:
            ep.steps.append(Step(index=1, plan_reply=reply))
        if final is not None:
            ep.original = {"results": {"R1": ["a *** b"], "final_ans": final}}
        return ep

    yes, no = Example("1", "q?", True), Example("2", "q?", False)
    score = STRATEGYQA.score_original
    assert score(episode("Facts: ... So the Answer is True."), yes, "cot") == {"accuracy": 1.0}
    assert score(episode("Answer is False."), no, "direct") == {"accuracy": 1.0}
    assert score(episode("False"), no, "direct") == {"accuracy": 0.0}  # the original's offset eats it
    iterative = "lumos_iterative"
    final = "Question: q? Must answer yes/no.; Answer: Yes, it is."
    assert score(episode(final=final), yes, iterative)["accuracy"] == 1
    assert score(episode(final="Question: q?; Answer: No answer"), no, iterative)["accuracy"] == 1  # no "yes" in it
    assert score(episode(final="Question: q?; Answer: eyes"), yes, iterative)["accuracy"] == 1  # a substring
    ep = episode(final="Question: q?; Answer: yes")
    ep.status = "step_limit"
    assert score(ep, yes, iterative) == {"accuracy": 0.0}


DEMOS = {  # failure demo -> (benchmark, formulation, our status, what the original did)
    "lumos_iterative.hotpotqa_first_action_unknown": ("hotpotqa", "lumos_iterative", "tool_error"),
    "lumos_iterative.hotpotqa_subgoal_ends_with_knowledgequery": ("hotpotqa", "lumos_iterative", "finished"),
    "lumos_onetime.strategyqa_onetime_unknown_action": ("strategyqa", "lumos_onetime", "tool_error"),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_failure_demos_end_one_task_where_the_original_crashed_the_run(reference, demo):
    """Where the original crashed the whole run, the same prompts lead up to it and only that task ends
    (the planner stops and QA finds nothing once past what the original recorded)."""
    bench, formulation, status = DEMOS[demo]
    records = _records(reference / "failure_demos" / f"{demo}.transcripts.jsonl")
    onetime = formulation == "lumos_onetime"
    planner = _module(records, "plan", default="Yes, I will stop planning.")
    grounder = _module(records, "ground")
    toolbox = qa_toolbox(source=FakeWikipedia(records), ranker=RecordedRanker(records),
                         qa_generator=_chat_model(records, ("qa_context", "qa_nocontext", "qa_forced"),
                                                  default="Answer: No answer"))
    agent = Agent(planner, grounder, toolbox, domain="complex_qa", formulation="onetime" if onetime else "iterative",
                  protocol=OriginalQAProtocol(bench, onetime=onetime))
    (episode,) = agent.run([("0", records[0]["question"])])
    for module, generator in (("plan", planner), ("ground", grounder)):
        expected = _expected_prompts(records[0], module)
        assert generator.calls[:len(expected)] == expected
    assert episode.status == status, episode.error
    assert BENCHMARKS[bench].score_original(episode, type("Gold", (), {"answer": records[0]["answer"]})(),
                                            formulation) == {"em" if bench == "hotpotqa" else "accuracy": 0.0}
    if demo.endswith("knowledgequery"):
        # the original's str + list: here the planner is told the list as StrategyQA's str() writes it
        assert "The executed result for Subgoal 1 is ['Scott Derrickson *** " in planner.calls[1]
