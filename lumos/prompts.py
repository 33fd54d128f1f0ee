"""Module instructions, conversation builders and chat rendering (FORMAT.md §3).

The one source of prompt text: training-data creation (``data.process_for_train``) and
inference (the agent loop) both build their conversations here, so train and test prompts
cannot drift. Strings marked *literal* in FORMAT.md are reproduced byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from lumos.format import FormatError, Plan, number_outputs, render_actions, render_subgoal
from lumos.vocabulary import vocabulary

Message = dict[str, str]
Formulation = Literal["iterative", "onetime"]

PLAN_INSTRUCTION = "Please provide a reasonable subgoal-based plan to solve the given task.\n"
GROUND_INSTRUCTION = (
    "Please ground the given subgoal to corresponding executable actions for solving the given task. "
    "The grounded actions must be the one in available action list.\n\n"
)
KEEP_PLANNING = "No, I will keep planning. "
STOP_PLANNING = "Yes, I will stop planning."
STOP_QUESTION = ". Should we stop planning?"

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
ROLE_HEADERS = {SYSTEM: "<|system|>\n", USER: "<|user|>\n", ASSISTANT: "<|assistant|>\n"}


# --------------------------------------------------------------------------- single turns


def plan_task_prompt(task: str) -> str:
    """First user turn of the planning module."""
    return f"{PLAN_INSTRUCTION}Task: {task}; Initial Environment Description: None."


def plan_feedback(subgoal_index: int, result: str) -> str:
    """User turn telling the planner what subgoal ``subgoal_index`` (1-based) produced."""
    return f"The executed result for Subgoal {subgoal_index} is {result.strip().strip('.')}{STOP_QUESTION}"


def web_plan_feedback(subgoal_text: str) -> str:
    """Web-agent variant: the planner is told which subgoal was done, not an HTML result."""
    text = subgoal_text.strip()
    text = text[:1].lower() + text[1:]
    return f"We have already {text}".strip(".") + STOP_QUESTION


def planner_answer(subgoal_index: int, subgoal_text: str) -> str:
    """Assistant turn of the iterative planner proposing subgoal ``subgoal_index``."""
    line = f"Subgoal {subgoal_index}: {subgoal_text}"
    return line if subgoal_index == 1 else KEEP_PLANNING + line


def ground_instruction(domain: str, task: str) -> str:
    """The grounding module's instruction block, ending with ``"Task: <task> \\n"``."""
    vocab = vocabulary(domain)
    return (f"{GROUND_INSTRUCTION}The available action list is {vocab.action_list_text()}.\n"
            f"{vocab.descriptions_text()}\n\nTask: {task} \n")


def ground_subgoal_prompt(subgoal_line: str, previous_results: Sequence[tuple[int, str]] = ()) -> str:
    """``"Subgoal to be grounded: Subgoal k: ...\\n"``; complex_qa appends earlier results."""
    if not previous_results:
        return f"Subgoal to be grounded: {subgoal_line}\n"
    text = f"Subgoal to be grounded: {subgoal_line} The grounding could be based on the following results:"
    for index, result in previous_results:
        text += f" The execution result for Subgoal {index} is {result}"
    return text + "\n"


def ground_onetime_prompt(domain: str, task: str, subgoal_lines: Sequence[str]) -> str:
    return ground_instruction(domain, task) + f"Subgoals to be grounded: {'; '.join(subgoal_lines)}\n"


# --------------------------------------------------------------------------- planner replies


@dataclass(frozen=True)
class PlannerReply:
    """What an iterative planner said: stop, or the next subgoal's number and text."""

    stop: bool
    index: int | None = None
    text: str | None = None

    @property
    def subgoal_line(self) -> str:
        return f"Subgoal {self.index}: {self.text}"


_REPLY_SUBGOAL = re.compile(r"(?:No, I will keep planning\. )?Subgoal (\d+): (.+)", re.DOTALL)


def parse_planner_reply(text: str) -> PlannerReply:
    """Parse an iterative planner's answer (untrusted model output)."""
    reply = text.strip()
    if reply.startswith(STOP_PLANNING.rstrip(".")):
        return PlannerReply(stop=True)
    match = _REPLY_SUBGOAL.fullmatch(reply)
    if not match or not match.group(2).strip():
        raise FormatError("planner reply is neither a subgoal nor a stop", text,
                          expected=f"'Subgoal k: <text>', '{KEEP_PLANNING}Subgoal k: <text>' or '{STOP_PLANNING}'")
    return PlannerReply(stop=False, index=int(match.group(1)), text=match.group(2).strip())


def split_onetime_plan(text: str) -> list[tuple[int, str]]:
    """Split a onetime planner answer ``"Subgoal 1: ...; Subgoal 2: ..."`` into numbered subgoals."""
    parts = re.split(r"; (?=Subgoal \d+: )", text.strip())
    subgoals = []
    for part in parts:
        match = re.fullmatch(r"Subgoal (\d+): (.+)", part.strip(), re.DOTALL)
        if not match:
            raise FormatError("onetime plan part is not a subgoal", part, expected="'Subgoal k: <text>'")
        subgoals.append((int(match.group(1)), match.group(2).strip()))
    return subgoals


# --------------------------------------------------------------------------- conversations


def _subgoal_results(plan: Plan) -> list[str]:
    results = []
    for k, subgoal in enumerate(plan.subgoals, start=1):
        result = subgoal.last_result
        if result is None:
            raise FormatError(f"subgoal {k}'s last action has no result", render_subgoal(k, subgoal),
                              expected="'... = <result>' on the last action of every subgoal")
        results.append(result)
    return results


def _subgoal_lines(plan: Plan) -> list[str]:
    return [render_subgoal(k, subgoal) for k, subgoal in enumerate(plan.subgoals, start=1)]


def plan_messages(task: str, plan: Plan, domain: str, formulation: Formulation) -> list[Message]:
    """The planning module's training conversation for one annotated task."""
    messages = [{"role": USER, "content": plan_task_prompt(task)}]
    if formulation == "onetime":
        messages.append({"role": ASSISTANT, "content": "; ".join(_subgoal_lines(plan))})
        return messages
    results = None if domain == "web_agent" else _subgoal_results(plan)
    for k, subgoal in enumerate(plan.subgoals, start=1):
        messages.append({"role": ASSISTANT, "content": planner_answer(k, subgoal.text)})
        feedback = web_plan_feedback(subgoal.text) if results is None else plan_feedback(k, results[k - 1])
        messages.append({"role": USER, "content": feedback})
    messages.append({"role": ASSISTANT, "content": STOP_PLANNING})
    return messages


def ground_messages(task: str, plan: Plan, domain: str, formulation: Formulation) -> list[Message]:
    """The grounding module's training conversation for one annotated task."""
    numbered = number_outputs(plan)
    lines = _subgoal_lines(plan)
    if formulation == "onetime":
        return [
            {"role": USER, "content": ground_onetime_prompt(domain, task, lines)},
            {"role": ASSISTANT, "content": render_actions(numbered.actions)},
        ]
    results = _subgoal_results(plan) if domain == "complex_qa" else []
    messages: list[Message] = []
    for k, (line, subgoal) in enumerate(zip(lines, numbered.subgoals), start=1):
        if k == 1:
            user = ground_instruction(domain, task) + ground_subgoal_prompt(line)
        else:
            previous = [(i, results[i - 1]) for i in range(1, k)] if results else []
            user = ground_subgoal_prompt(line, previous)
        messages.append({"role": USER, "content": user})
        messages.append({"role": ASSISTANT, "content": render_actions(subgoal.actions)})
    return messages


def direct_messages(question: str, answer: str) -> list[Message]:
    return [{"role": USER, "content": question}, {"role": ASSISTANT, "content": str(answer)}]


def cot_messages(question: str, solution: str) -> list[Message]:
    return [{"role": USER, "content": question}, {"role": ASSISTANT, "content": solution}]


# --------------------------------------------------------------------------- chat rendering


def _check_messages(messages: Sequence[Message]) -> None:
    for i, message in enumerate(messages):
        if message.get("role") not in ROLE_HEADERS or not isinstance(message.get("content"), str):
            raise ValueError(f"message {i} must have role in {sorted(ROLE_HEADERS)} and string content, "
                             f"got {message!r}")


def render_chat(messages: Sequence[Message], eos: str) -> tuple[str, list[tuple[int, int]]]:
    """Tulu training text and the character spans the loss covers.

    Each assistant turn is ``"<|assistant|>\\n" + content.strip() + eos + "\\n"``; the whole
    text is stripped. The returned spans cover each assistant answer *including* its EOS and
    excluding the ``<|assistant|>\\n`` header, so a tokenizer's offset mapping turns them into
    a label mask in one pass.
    """
    _check_messages(messages)
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    for message in messages:
        header = ROLE_HEADERS[message["role"]]
        body = message["content"].strip()
        if message["role"] == ASSISTANT:
            body += eos
            spans.append((length + len(header), length + len(header) + len(body)))
        piece = header + body + "\n"
        pieces.append(piece)
        length += len(piece)
    text = "".join(pieces)
    # Only leading whitespace could shift spans; headers start with '<', so none is stripped there.
    return text.strip(), spans


PromptStyle = Literal["tulu", "original"]


def render_prompt(messages: Sequence[Message], eos: str, style: PromptStyle = "tulu") -> str:
    """Inference prompt for the next assistant turn, ending with ``"<|assistant|>\\n"``.

    ``tulu`` (default) renders earlier turns exactly as training did (EOS after each earlier
    assistant answer). ``original`` reproduces the released evaluation scripts, which joined
    turns with ``"\\n\\n<|user|>\\n"`` and no EOS (tokenise it without special tokens); use it
    only to reproduce published numbers.
    """
    _check_messages(messages)
    if not messages or messages[-1]["role"] == ASSISTANT:
        raise ValueError("a prompt must end with a user (or system) turn")
    if style == "tulu":
        text, _ = render_chat(messages, eos)
        return text + "\n" + ROLE_HEADERS[ASSISTANT]
    if style == "original":
        text = ""
        for message in messages:
            header = ROLE_HEADERS[message["role"]]
            if message["role"] == ASSISTANT:
                text += header + message["content"].strip() + "\n\n"
            else:
                text += header + message["content"].strip() + "\n"
        return text + ROLE_HEADERS[ASSISTANT]
    raise ValueError(f"unknown prompt style {style!r}; choose 'tulu' or 'original'")
