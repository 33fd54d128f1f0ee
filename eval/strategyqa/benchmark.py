"""StrategyQA (``data/eval/strategyqa/test.json``): a JSON list of ``question`` and boolean ``answer``.

Domain complex_qa; the prediction (``yes``, ``True.``, ``No, because ...``) is read as yes/no and
compared with the gold boolean; anything else scores 0.

``--scoring original`` scores as the released ``eval/strategyqa/run_eval.py`` did: lumos formulations
take the ``Answer:`` part of ``decide_final_ans`` (iterative) or of ``Output``/the highest ``R<n>``
(onetime) and count it ``true`` when ``yes`` occurs in it anywhere; cot compares the text after the
last ``Answer is `` (less its last character) with ``True``/``False``; direct compares the reply from
its eleventh character on, less the last, so a reply ``True`` scores 0, as there. (The released cot
function stopped with a NameError before scoring; its scoring rule is applied as written.)
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

from eval.hotpotqa.benchmark import _original_protocol, extract, lumos_prediction
from eval.runner import Benchmark, Example, read_examples
from lumos.metrics import original_strategyqa_correct, yes_no_accuracy

ANSWER_IS = "Answer is "


def load(path: Path) -> list[Example]:
    return read_examples(path, "StrategyQA", lambda data, n: Example(
        id=str(data.get("qid", f"strategyqa_{n}")), question=data["question"].strip(), answer=data["answer"]))


def original_prediction(episode: Any, formulation: str) -> str | None:
    """The text the released StrategyQA evaluation compared (None where it compared nothing)."""
    if formulation.startswith("lumos_"):
        value = lumos_prediction(episode, formulation, output_first=formulation == "lumos_onetime")
        return value if isinstance(value, str) else None
    reply = episode.steps[0].plan_reply if episode.steps and episode.steps[0].plan_reply is not None else None
    if reply is None:
        return None
    if formulation == "cot":
        return reply[reply.rfind(ANSWER_IS) + len(ANSWER_IS):-1]
    return reply[len(ANSWER_IS):-1]


def score_original(episode: Any, example: Example, formulation: str) -> dict[str, float]:
    prediction = original_prediction(episode, formulation)
    if prediction is None or episode.status != "finished":
        return {"accuracy": 0.0}
    if formulation.startswith("lumos_"):
        return {"accuracy": original_strategyqa_correct(prediction, example.answer)}
    return {"accuracy": float(str(example.answer) == prediction)}


BENCHMARK = Benchmark(name="strategyqa", domain="complex_qa", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"accuracy": yes_no_accuracy(prediction, gold)},
                      extract=extract, original_rounds=10, score_original=score_original,
                      original_prediction=original_prediction,
                      original_protocol=lambda config: _original_protocol("strategyqa", config))
