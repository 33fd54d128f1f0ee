"""HotpotQA (``data/eval/hotpotqa/test.json``): a JSON list of ``question``, ``answer`` (``_id`` when present).

Domain complex_qa; scored by exact match and token F1 after the official normalisation
(lowercase, no punctuation, no a/an/the, single spaces).

``--scoring original`` scores as the released ``eval/hotpotqa/run_eval.py`` did: the prediction it
wrote (iterative: the ``Answer:`` part of ``decide_final_ans``; onetime: of the highest ``R<n>``;
cot: the text after ``decomposed questions, the answer is`` less its last character; direct: the
reply; ``true``/``false`` read as yes/no for cot and direct), ``em`` after the same normalisation,
and the CORRECT/INCORRECT judge over the written predictions (``--judge``). A task the original
wrote no prediction for scores 0.
"""

from __future__ import annotations

import re
from pathlib import Path

from typing import Any

from eval.runner import Benchmark, Example, read_examples
from lumos.metrics import exact_match, f1_score, normalize_answer
from lumos.tools.qa import answer_part

_ANSWER_IS = re.compile(r"answer is:?\s*(.+?)\.?$", re.IGNORECASE | re.DOTALL)


def load(path: Path) -> list[Example]:
    return read_examples(path, "HotpotQA", lambda data, n: Example(
        id=str(data.get("_id", f"hotpotqa_{n}")), question=data["question"].strip(), answer=str(data["answer"])))


def extract(text: str) -> str:
    """A chain of thought's final answer (``... so the answer is X.``), else the whole reply."""
    match = _ANSWER_IS.search(text)
    return match.group(1).strip() if match else text.strip()


def final_variable(results: dict[str, Any], output_first: bool = False) -> str:
    """The onetime result the original scored: ``Output`` (StrategyQA, when present), else the highest ``R<n>``;
    ``ValueError`` when a name is neither (a swallowed error's ``""``), as the original's ``int()`` raised."""
    if output_first and "Output" in results:
        return "Output"
    return "R" + str(sorted(int(name[1:]) for name in results)[-1])


def lumos_prediction(episode: Any, formulation: str, *, output_first: bool = False) -> Any:
    """What the original read as the prediction of a lumos episode: None where it wrote none.

    Iterative: the ``final_ans`` of ``decide_final_ans`` (present only when the planner stopped in time
    with the results intact); onetime: the value of :func:`final_variable`. A list value is returned as
    it is (the original's scoring then failed on it).
    """
    book = getattr(episode, "original", None) or {}
    results = book.get("results")
    if not results:
        return None
    if formulation == "lumos_iterative":
        value = results.get("final_ans")
    else:
        try:
            value = results[final_variable(results, output_first)]
        except (ValueError, IndexError, KeyError):
            return None
    if isinstance(value, str):
        return answer_part(value)
    return value


def _yes_no_word(text: str) -> str:
    return {"false": "no", "false.": "no", "true": "yes", "true.": "yes"}.get(text.lower(), text)


def original_prediction(episode: Any, formulation: str) -> str | None:
    """The prediction the released HotpotQA evaluation wrote for an episode (None: none written)."""
    if formulation.startswith("lumos_"):
        value = lumos_prediction(episode, formulation)
        return value if isinstance(value, str) else None
    reply = episode.steps[0].plan_reply if episode.steps and episode.steps[0].plan_reply is not None else None
    if reply is None:
        return None
    if formulation == "cot":
        parts = reply.split("decomposed questions, the answer is")
        if len(parts) < 2:
            return None
        return _yes_no_word(parts[1].strip()[:-1])
    return _yes_no_word(reply.strip())


def score_original(episode: Any, example: Example, formulation: str) -> dict[str, float]:
    prediction = original_prediction(episode, formulation)
    written = prediction is not None and episode.status == "finished"
    return {"em": float(written and normalize_answer(prediction) == normalize_answer(example.answer))}


BENCHMARK = Benchmark(name="hotpotqa", domain="complex_qa", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"em": exact_match(prediction or "", gold),
                                                      "f1": f1_score(prediction or "", gold)},
                      extract=extract, original_rounds=10, score_original=score_original,
                      original_prediction=original_prediction,
                      original_protocol=lambda config: _original_protocol("hotpotqa", config))


def _original_protocol(flavour: str, config: Any):
    from eval.hotpotqa.original import OriginalQAProtocol

    return OriginalQAProtocol(flavour, onetime=config.formulation == "lumos_onetime")
