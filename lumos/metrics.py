"""Answer metrics of the evaluated benchmarks: numeric accuracy, HotpotQA EM/F1, yes/no accuracy, LLM judge.

Each scorer takes one prediction and one gold answer and returns a float in [0, 1]; a run's
metric is their mean. Predictions are untrusted model text: anything unreadable scores 0.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

from lumos.tools.engines.numbers import parse_number, same_number

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


def original_yes_no(prediction: str) -> str:
    """The released StrategyQA evaluation's reading: ``"true"`` when ``yes`` occurs anywhere (any case),
    else ``"false"`` (so ``"No answer"``, ``"eyes"`` and ``"Yes and no"`` read as they happen to)."""
    return "true" if "yes" in prediction.lower() else "false"


def original_strategyqa_correct(prediction: str, gold: object) -> float:
    """1.0 when :func:`original_yes_no` equals ``str(gold).lower()`` (gold ``True`` -> ``"true"``)."""
    return float(original_yes_no(prediction) == str(gold).lower())


# --------------------------------------------------------------------------- LLM judge

JUDGE_PROMPT = ("Question: {question}\nGold answer: {gold}\nPredicted answer: {prediction}\n"
                "Does the predicted answer mean the same as the gold answer? Answer Yes or No.\nAnswer:")
# The released HotpotQA evaluation's judge (GPT-4, one user message, temperature 0, 100 tokens):
# 1 exactly when the stripped reply is "CORRECT".
ORIGINAL_JUDGE_PROMPT = ("Please judge whether the model prediction can be regarded as correct according to the given "
                         "question and its ground-truth answer. Please answer 'CORRECT' or 'INCORRECT'. No more "
                         "details and explanations.\n\nQuestion: {question}\nModel prediction: {prediction}\n"
                         "Ground-truth answer: {gold}\n")


def judge_accuracy(judge, questions: Sequence[str], predictions: Sequence[object],
                   golds: Sequence[object], style: str = "standard") -> list[float | None]:
    """One batched call to ``judge``; None where the judge failed or (standard style) was unclear.

    ``standard``: our yes/no prompt to a ``Generator``. ``original``: the released evaluation's
    CORRECT/INCORRECT prompt, sent as a chat message when the judge is a ``ChatGenerator``; anything
    but ``CORRECT`` scores 0, as the original counted it.
    """
    if style == "original":
        texts = [ORIGINAL_JUDGE_PROMPT.format(question=q, prediction=p, gold=g)
                 for q, p, g in zip(questions, predictions, golds)]
        if hasattr(judge, "try_chat"):
            replies = judge.try_chat([[{"role": "user", "content": text}] for text in texts], temperature=0.0,
                                     max_tokens=100)
        else:
            replies = judge.try_generate(texts, stop=["\n"], max_new_tokens=100)
        return [None if isinstance(reply, Exception) else float(reply.strip() == "CORRECT") for reply in replies]
    if style != "standard":
        raise ValueError(f"judge style must be 'standard' or 'original', got {style!r}")
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


# --------------------------------------------------------------------------- the released evaluation's scoring

ANSWER_IS = "Answer is "


def original_final_variable(results: dict[str, str], formulation: str) -> str:
    """The variable the released maths evaluation reads: ``Output`` (onetime, when set), else the highest ``R<n>``.

    ``ValueError`` where the original crashed (iterative results holding a name like ``Output``).
    """
    if formulation == "lumos_onetime" and "Output" in results:
        return "Output"
    return f"R{max(int(name[1:]) for name in results)}"


def original_maths_accuracy(results: dict[str, str] | None, answer: str, formulation: str) -> float:
    """1.0 when the final variable's stored text equals the answer text exactly (``'18'``, never ``' 18'``)."""
    if not results:
        return 0.0  # a task whose results were lost (or that never ran an action) is not written out
    try:
        final = original_final_variable(results, formulation)
    except ValueError:
        return 0.0
    return float(results.get(final) == answer)


def original_reply_answer(reply: str, formulation: str) -> str:
    """What the released cot/direct scorers read of a reply.

    cot: from after the last ``Answer is `` to the last character, excluded (the final period);
    direct: ``reply[len("Answer is "):-1]`` whatever the reply says (a direct model answering ``18``
    therefore scores 0, as it did there).
    """
    if formulation == "direct":
        return reply[len(ANSWER_IS):-1]
    return reply[reply.rfind(ANSWER_IS) + len(ANSWER_IS):-1]


def original_maths_score(episode, answer: str, formulation: str) -> dict[str, float]:
    """``{"accuracy": ...}`` as the released GSM8K/SVAMP evaluation scores ``episode`` (``answer``: its gold text)."""
    if formulation in ("cot", "direct"):
        reply = episode.steps[0].plan_reply if episode.steps and episode.steps[0].plan_reply is not None else ""
        return {"accuracy": float(original_reply_answer(reply, formulation) == answer)}
    results = (episode.original or {}).get("results")
    return {"accuracy": original_maths_accuracy(results, answer, formulation)}
