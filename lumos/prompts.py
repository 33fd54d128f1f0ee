"""Module instructions, conversation builders and chat rendering (docs/FORMAT.md §3).

The one source of prompt text: training-data creation (``data.process_for_train``) and
inference (the agent loop) both build their conversations here, so train and test prompts
cannot drift. Strings marked *literal* in FORMAT.md are reproduced byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from lumos.format import FormatError
from lumos.vocabulary import vocabulary

Message = dict[str, str]

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


def executed_result_feedback(subgoal_index: int, value: str) -> str:
    """Training-file planner turn after subgoal ``subgoal_index`` (1-based): ``value`` as given
    (the caller cuts it out of the annotation), the sentence stripped, then the question."""
    return f"The executed result for Subgoal {subgoal_index} is {value}".strip() + STOP_QUESTION


def subgoal_done_feedback(done: str) -> str:
    """Web-agent training-file planner turn: ``done`` is the subgoal's text, first letter lower-cased."""
    return f"We have already {done}".strip(".").strip() + STOP_QUESTION


def plan_messages(task: str, subgoal_lines: Sequence[str], feedback: Sequence[str] | None = None) -> list[Message]:
    """The planning module's training conversation.

    ``subgoal_lines`` are the ``Subgoal k: ...`` lines as annotated. Without ``feedback`` the
    conversation is onetime (one answer, the lines joined by ``"; "``); with it, iterative:
    ``feedback[k]`` is the user turn after subgoal ``k``, and the planner stops after the last.
    """
    messages = [{"role": USER, "content": plan_task_prompt(task)}]
    if feedback is None:
        messages.append({"role": ASSISTANT, "content": "; ".join(subgoal_lines)})
        return messages
    if len(feedback) != len(subgoal_lines):
        raise ValueError(f"{len(subgoal_lines)} subgoals but {len(feedback)} feedback turns")
    for k, (line, turn) in enumerate(zip(subgoal_lines, feedback)):
        messages.append({"role": ASSISTANT, "content": line if k == 0 else KEEP_PLANNING + line})
        messages.append({"role": USER, "content": turn})
    messages.append({"role": ASSISTANT, "content": STOP_PLANNING})
    return messages


def ground_followup_prompt(subgoal_line: str, earlier_results: Sequence[tuple[str, str]] | None = None) -> str:
    """A later iterative grounding turn of the training files. ``earlier_results`` (complex_qa)
    are ``(label, result)`` pairs, the label as annotated (``"Subgoal 1"``)."""
    if earlier_results is None:
        return f"Subgoal to be grounded: {subgoal_line}\n"
    text = f"Subgoal to be grounded: {subgoal_line} The grounding could be based on the following results:"
    text += "".join(f" The execution result for {label} is {result}" for label, result in earlier_results)
    return text + "\n"


def ground_messages(domain: str, task: str, subgoal_lines: Sequence[str], answers: Sequence[str],
                    earlier_results: Sequence[Sequence[tuple[str, str]] | None] | None = None) -> list[Message]:
    """The grounding module's iterative training conversation: one user turn per subgoal line
    (the first carries the instruction block), ``answers[k]`` the actions of subgoal ``k``."""
    if len(answers) != len(subgoal_lines):
        raise ValueError(f"{len(subgoal_lines)} subgoals but {len(answers)} answers")
    earlier_results = earlier_results or [None] * len(subgoal_lines)
    messages: list[Message] = []
    for k, (line, answer, earlier) in enumerate(zip(subgoal_lines, answers, earlier_results)):
        if k == 0:
            user = ground_instruction(domain, task) + f"Subgoal to be grounded: {line}\n"
        else:
            user = ground_followup_prompt(line, earlier)
        messages.append({"role": USER, "content": user})
        messages.append({"role": ASSISTANT, "content": answer})
    return messages


def ground_onetime_messages(domain: str, task: str, subgoal_lines: Sequence[str], answer: str) -> list[Message]:
    """The grounding module's onetime training conversation: every subgoal at once, every action in one answer."""
    return [{"role": USER, "content": ground_onetime_prompt(domain, task, subgoal_lines)},
            {"role": ASSISTANT, "content": answer}]


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
