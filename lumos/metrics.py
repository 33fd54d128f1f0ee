"""Answer metrics of the evaluated benchmarks: numeric accuracy, HotpotQA EM/F1, yes/no accuracy, LLM judge.

Each scorer takes one prediction and one gold answer and returns a float in [0, 1]; a run's
metric is their mean. Predictions are untrusted model text: anything unreadable scores 0.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

from lumos.tools.numbers import parse_number, same_number

_NUMBER_IN_TEXT = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?%?")


# --------------------------------------------------------------------------- numbers (GSM8K, SVAMP)


def extract_number(text: object) -> str | None:
    """The number a prediction states: the whole text when it is one number, else its last number."""
    if text is None:
        return None
    text = str(text).strip().rstrip(".")
    if parse_number(text) is not None:
        return text
    found = _NUMBER_IN_TEXT.findall(text)
    return found[-1] if found else None


def numeric_accuracy(prediction: object, gold: object) -> float:
    """1.0 when the prediction names the gold number (``18`` = ``18.0`` = ``$18`` = ``18 dollars``)."""
    number = extract_number(prediction)
    return float(number is not None and same_number(number, gold))


# --------------------------------------------------------------------------- HotpotQA EM / F1


def normalize_answer(text: object) -> str:
    """The official HotpotQA/SQuAD normalisation: lowercase, drop punctuation and a/an/the, squeeze spaces."""
    text = str(text).lower()
    text = "".join(char for char in text if char not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: object, gold: object) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: object, gold: object) -> float:
    """Token F1 after normalisation; yes/no/noanswer must match exactly, as the official script requires."""
    pred, truth = normalize_answer(prediction), normalize_answer(gold)
    if (pred in ("yes", "no", "noanswer") or truth in ("yes", "no", "noanswer")) and pred != truth:
        return 0.0
    pred_tokens, truth_tokens = pred.split(), truth.split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- StrategyQA yes/no

_YES = {"yes", "true", "y", "1", "correct"}
_NO = {"no", "false", "n", "0", "incorrect"}


def to_yes_no(value: object) -> bool | None:
    """``True``/``"yes"``/``"True."``/``"Yes, because ..."`` -> True; unreadable -> None."""
    if isinstance(value, bool):
        return value
    words = normalize_answer(value).split()
    if not words or words[:2] == ["no", "answer"]:  # the QA tool's refusal is not a "no"
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    return None


def yes_no_accuracy(prediction: object, gold: object) -> float:
    predicted, truth = to_yes_no(prediction), to_yes_no(gold)
    return float(predicted is not None and predicted == truth)


# --------------------------------------------------------------------------- LLM judge

JUDGE_PROMPT = ("Question: {question}\nGold answer: {gold}\nPredicted answer: {prediction}\n"
                "Does the predicted answer mean the same as the gold answer? Answer Yes or No.\nAnswer:")


def judge_accuracy(judge, questions: Sequence[str], predictions: Sequence[object],
                   golds: Sequence[object]) -> list[float | None]:
    """One batched call to ``judge`` (a ``lumos.llm.Generator``); None where the judge failed or was unclear."""
    prompts = [JUDGE_PROMPT.format(question=q, gold=g, prediction=p)
               for q, p, g in zip(questions, predictions, golds)]
    replies = judge.try_generate(prompts, stop=["\n"], max_new_tokens=4)
    scores: list[float | None] = []
    for reply in replies:
        verdict = None if isinstance(reply, Exception) else to_yes_no(reply)
        scores.append(None if verdict is None else float(verdict))
    return scores


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
