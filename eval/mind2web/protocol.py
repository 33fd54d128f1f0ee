"""Mind2Web's step-level protocol (MindAct's), run with the Lumos planning and grounding modules.

Every gold step of a task is judged on its own, given the gold past:

1. **planner**: its history is the task's gold previous steps, each an assistant turn
   ``Subgoal k: <sentence>`` and a user turn ``We have already <sentence>. Should we stop
   planning?``, the sentence made from the step's ``action_repr`` as the original evaluation makes
   it (:func:`step_sentence`: ``[button]  Search -> CLICK`` -> ``Click button Search``); its
   reply is the subgoal of step i;
2. **grounder**: its history is its own earlier turns of the task (the subgoals it was given and
   its replies), as in the original evaluation; it grounds the planner's subgoal;
3. **execution**: the grounded web action (:mod:`lumos.tools.web`'s grammar) is executed on the
   step's candidate pool: the element is the pool candidate that the ranker scores highest for
   ``task is: <QUERY>\\nPrevious actions: `` (:func:`element_query`: the grounder's query in MindAct's
   form; the original also puts the last three gold actions there, but they name elements already
   acted on, which a ranker then picks again: with BM25 and the gold element's text as the query,
   the 100 real steps of the step-level file reach 0.79 element accuracy without them, 0.65 with);
   the first action of the reply is judged and must be in the released grammar, its output page
   included (further actions are counted in ``extra_actions``);
4. **scoring** (MindAct): element correct = the chosen element is a gold one; operation F1 =
   token F1 of ``"OP value"``; step success = both; task success = every step of the task succeeded.

The pool is the ranker's top ``top_k`` over ALL the step's candidates for MindAct's
candidate-generation query ``task is: <task>\\nPrevious actions: <last three gold action_reprs>``
(our documented choice: the gold element may be missing from it, and then the step fails); ties
keep backend-node-id order, so no position in the source carries the answer.

``prompt_style="original"`` replays the released evaluation (``eval/mind2web/run_eval.py`` of
allenai/lumos), byte for byte where it is not a bug. Per quirk of the original:

- its planner and grounder prompts are rebuilt exactly (``"\\n\\n<|user|>\\n"`` joins, no EOS, the
  raw sentence as the assistant turn without ``No, I will keep planning.``, the grounder given the
  planner's whole reply first and the part after ``No, I will keep planning.`` later, 15 rounds at
  most): **reproduced**;
- the planner's stop is never read (one round per gold step, a stop reply is grounded as it is):
  **reproduced** (our default scores a step whose planner stops or says nothing parsable as a miss);
- every action of a reply is executed and counted against the step's gold (our default judges the
  first): **reproduced**;
- actions are read with its own ``find``/``rfind`` arithmetic, so a TYPE without ``, TEXT:`` loses
  its query's last character and gets a nonsense text: **reproduced**, as a record of what the
  released checkpoints were scored on (our default rejects such an action with a typed error);
- page variables: ``Env`` is step 0's page and each action's output names the NEXT step's page, so
  an action on ``Env`` at a later step is judged on step 0's page against that step's gold:
  **reproduced** (our default judges every step on its own page);
- an undefined page variable raises KeyError and ends the whole run: **not reproduced**; the action
  is recorded with the error and neither executed nor counted (a crash is not a score);
- the pool (``rank=50``) is the first 50 candidates in positive-then-negative order, ranker scores
  discarded, so the gold element is always in it: **reproduced** (our default: the ranker's top-k);
- the element is chosen with ``task is: <QUERY>\\nPrevious actions: <last three gold actions>``:
  **reproduced** (our default leaves the previous actions out, point 3 above);
- SELECT queries get `` The option contents should be close to '<text>'.`` appended: **reproduced**
  (our default appends the option text to the query);
- element match compares the chosen candidate's TEXT with the first positive's (a negative with the
  same text counts), the value is compared case-insensitively, and the metric is correct actions /
  executed actions over the whole run, actions with an unknown verb being skipped and uncounted:
  **reproduced** as ``--scoring original`` (``original_step_success``); our default is MindAct's;
- at commit 146dd9d ``extract_key_info`` lacks its ``global tot_tags, corr_em`` line, so the first
  executed action raises UnboundLocalError and the run ends with no figure (failure demo
  ``unpatched_globals``): **not reproduced**; we count as the patched original does (the reference);
- ``extract_key_info(..., rank=1)`` returns the 10th-ranked candidate's text, not the top-1 that is
  scored: **not reproduced**; the returned text is never read by the original (no prompt or score
  depends on it), so it has no observable effect;
- ``translate_action`` picks its verb with the unseeded global ``random``: our phrase for a step is
  drawn from ``random.Random("<seed>:<task id>:<step>")`` (``--phrase_seed``), the same whatever the
  batching; the default style always takes the first phrase (``Click``/``Type``/``Select``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from eval.mind2web.data import Step, Task
from eval.mind2web.metrics import score_step
from lumos import prompts
from lumos.episode import Episode, ToolCall
from lumos.episode import Step as EpisodeStep
from lumos.llm import GenerationError
from lumos.tools.web import (Element, Ranker, WebActionError, WebArgumentError, WebPage, parse_web_actions,
                             parse_web_call, rank, web_shape)

HISTORY_WINDOW = 3  # MindAct's previous actions in a ranker query
ORIGINAL_ROUNDS = 15  # the original's loop: at most 15 steps of a task are judged
ORIGINAL_POOL = 50
SELECT_SUFFIX = " The option contents should be close to '{text}'."
CLICK_PHRASES = ("Click", "Visit", "Find and go into", "Enter")
TYPE_PHRASES = ("Type", "Input", "Put text")
SELECT_PHRASES = ("Select", "Choose", "Pick up")
ORIGINAL_CLICK_PHRASES = ("Visit", "Click", "Find and go into", "Enter")  # the original's list order

PhraseChooser = Callable[[Sequence[str]], str]


# --------------------------------------------------------------------------- sentences and queries


def step_sentence(action_repr: str, choose: PhraseChooser = lambda phrases: phrases[0],
                  click_phrases: Sequence[str] = CLICK_PHRASES) -> str:
    """The planner's sentence for a gold step, as the original makes it from the ``action_repr``:
    ``[link]  Search flights -> CLICK`` -> ``Click link Search flights``; ``... -> TYPE: Boston`` ->
    ``Type Boston in the textbox From``; another verb (ENTER) -> ``enter svg .``."""
    element, _, operation = action_repr.partition(" -> ")
    tag = element[element.find("[") + 1:element.find("]")]
    contents = element[element.find("]") + 1:].strip()
    if "CLICK" in operation or "HOVER" in operation:
        return f"{choose(click_phrases)} {tag} {contents}"
    if "TYPE" in operation:
        return f"{choose(TYPE_PHRASES)} {operation.split('TYPE:')[-1].strip()} in the {tag} {contents}"
    if "SELECT" in operation:
        return f"{choose(SELECT_PHRASES)} {operation.split('SELECT:')[-1].strip()} in the {tag} {contents}"
    return f"{operation.split(':')[0].strip().lower()} {tag} {contents}."


def previous_actions(step: Step) -> str:
    """The last three gold action_reprs before the step, ``"; "``-joined (MindAct)."""
    return "; ".join(step.previous_actions[-HISTORY_WINDOW:])


def ranker_query(text: str, step: Step) -> str:
    """MindAct's query form: ``task is: <text>\\nPrevious actions: <last three gold actions>``."""
    return f"task is: {text}\nPrevious actions: {previous_actions(step)}"


def element_query(query: str) -> str:
    """The query that picks the element of a grounded action: ``task is: <QUERY>\nPrevious actions: ``."""
    return f"task is: {query}\nPrevious actions: "


def candidate_pool(task: Task, step: Step, ranker: Ranker, k: int) -> WebPage:
    """The ranker's top ``k`` of ALL the step's candidates for the task and previous actions;
    ties keep backend-node-id order (never the source's positives-first order)."""
    neutral = sorted(step.candidates, key=lambda element: (len(element.id), element.id))
    ranked = rank(ranker, ranker_query(task.task, step), neutral)
    return WebPage([element for element, _ in ranked[:k]])


def original_pool(step: Step) -> WebPage:
    """The original's ``rank=50`` page: the first 50 candidates, positives first, unranked."""
    return WebPage(list(step.candidates[:ORIGINAL_POOL]))


def choose_element(ranker: Ranker, query: str, pool: Sequence[Element]) -> Element:
    """The pool's best element for ``query``; identical texts are scored once (as the original)."""
    texts = list(dict.fromkeys(element.text for element in pool))
    scores = dict(zip(texts, ranker.scores(query, texts)))
    best = max(range(len(pool)), key=lambda index: (scores[pool[index].text], -index))
    return pool[best]


# --------------------------------------------------------------------------- reading actions as the original


@dataclass(frozen=True)
class OriginalAction:
    """One action as the original reads it (``str.find`` arithmetic, no validation)."""

    action: str
    variable: str
    name: str
    args: str
    page: str
    query: str | None = None
    text: str | None = None


def read_original_action(action: str) -> OriginalAction:
    equals = action.find(" = ") + len(" = ")
    open_paren, close_paren = action.find("("), action.rfind(")")
    variable = action[:equals - len(" = ")].split(", ")[0].strip()
    name = action[equals:open_paren]
    args = action[open_paren + 1:close_paren]
    page = args[:args.find(", ")]
    query = text = None
    if name == "CLICK":
        query = args[args.find(", QUERY:") + len(", QUERY:"):].strip()
    elif name in ("TYPE", "SELECT"):
        query = args[args.find(", QUERY:") + len(", QUERY:"):args.rfind(", TEXT:")].strip()
        text = args[args.find(", TEXT:") + len(", TEXT:"):].strip()
    return OriginalAction(action, variable, name, args, page, query, text)


# --------------------------------------------------------------------------- one task's state


@dataclass
class TaskRun:
    """One task under the protocol: prompts so far, per-step records, the original's page variables."""

    example_id: str
    task: Task
    steps: list[Step]
    plan_prompt: str = ""
    ground_turns: list[dict[str, str]] = field(default_factory=list)
    ground_prompt: str = ""
    pages: dict[str, WebPage] = field(default_factory=dict)  # original style: variable -> page
    sentences: list[str] = field(default_factory=list)  # original style: the gold steps' sentences so far
    records: list[dict[str, Any]] = field(default_factory=list)
    episode: Episode | None = None


class StepLevelProtocol:
    """Runs tasks step by step with gold history; ``style`` is ``"tulu"`` (ours) or ``"original"``."""

    def __init__(self, planner, grounder, ranker: Ranker, *, style: str = "tulu", top_k: int = 50,
                 max_new_tokens: int | None = None, phrase_seed: int = 0,
                 phrase_chooser: Callable[[str, int], PhraseChooser] | None = None):
        if style not in ("tulu", "original"):
            raise ValueError(f"unknown prompt style {style!r}; choose 'tulu' or 'original'")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.planner, self.grounder, self.ranker = planner, grounder, ranker
        self.style, self.top_k = style, top_k
        self.original = style == "original"
        self.max_new_tokens = max_new_tokens or (512 if self.original else 256)
        self.phrase_seed = phrase_seed
        self.phrase_chooser = phrase_chooser or self._seeded_chooser

    def _seeded_chooser(self, task_id: str, index: int) -> PhraseChooser:
        if not self.original:
            return lambda phrases: phrases[0]
        generator = random.Random(f"{self.phrase_seed}:{task_id}:{index}")
        return lambda phrases: phrases[generator.randint(0, len(phrases) - 1)]

    # ----------------------------------------------------------------- the loop

    def run(self, tasks: Sequence[tuple[str, Task]]) -> list[TaskRun]:
        runs = []
        for example_id, task in tasks:
            steps = list(task.steps[:ORIGINAL_ROUNDS] if self.original else task.steps)
            run = TaskRun(example_id, task, steps)
            run.episode = Episode(id=example_id, task=task.task, formulation="lumos_iterative")
            runs.append(run)
        started = time.perf_counter()
        for index in range(max((len(run.steps) for run in runs), default=0)):
            active = [run for run in runs if index < len(run.steps) and not run.episode.done]
            if not active:
                break
            plan_prompts = [self._plan_prompt(run, index) for run in active]
            plan_replies, plan_seconds = self._generate(self.planner, plan_prompts)
            grounding = []
            for run, reply in zip(active, plan_replies):
                step = EpisodeStep(index=index + 1, plan_reply=None if isinstance(reply, GenerationError) else reply,
                                   plan_seconds=plan_seconds)
                run.episode.steps.append(step)
                if isinstance(reply, GenerationError):
                    run.episode.end("generation_error", f"planner, step {index + 1}: {reply}")
                    continue
                subgoal = self._subgoal(run, index, reply)
                if subgoal is None:
                    continue
                step.subgoal = subgoal
                grounding.append((run, self._ground_prompt(run, index, reply, subgoal)))
            ground_replies, ground_seconds = self._generate(self.grounder, [prompt for _, prompt in grounding])
            for (run, _), reply in zip(grounding, ground_replies):
                step = run.episode.steps[-1]
                step.ground_seconds = ground_seconds
                if isinstance(reply, GenerationError):
                    run.episode.end("generation_error", f"grounder, step {index + 1}: {reply}")
                    continue
                step.grounding = reply
                self._remember_grounding(run, reply)
                if self.original:
                    self._execute_original(run, index, reply)
                else:
                    self._execute(run, index, reply)
        for run in runs:
            if not run.episode.done:
                run.episode.end("finished")
            run.episode.seconds = round(time.perf_counter() - started, 3)
        return runs

    def _generate(self, generator, texts: list[str]) -> tuple[list[str | GenerationError], float]:
        if not texts:
            return [], 0.0
        started = time.perf_counter()
        replies = generator.try_generate(texts, stop=["\n"], max_new_tokens=self.max_new_tokens)
        return replies, round(time.perf_counter() - started, 3)

    # ----------------------------------------------------------------- prompts

    def _plan_prompt(self, run: TaskRun, index: int) -> str:
        history = run.steps[index].previous_actions
        if self.original:  # one string, extended by one gold step per round, as the original builds it
            if not run.plan_prompt:
                run.plan_prompt = "<|user|>\n" + prompts.plan_task_prompt(run.task.task) + "\n<|assistant|>\n"
            for k in range(len(run.sentences), len(history)):
                sentence = step_sentence(history[k], self.phrase_chooser(run.task.id, k + 1), ORIGINAL_CLICK_PHRASES)
                run.sentences.append(sentence)
                lowered = sentence[:1].lower() + sentence[1:]
                run.plan_prompt += (f"Subgoal {k + 1}: {sentence}\n\n<|user|>\n"
                                    f"We have already {lowered}. Should we stop planning?\n<|assistant|>\n")
            return run.plan_prompt
        messages = [{"role": prompts.USER, "content": prompts.plan_task_prompt(run.task.task)}]
        for k, action_repr in enumerate(history, start=1):
            sentence = step_sentence(action_repr, self.phrase_chooser(run.task.id, k))
            messages.append({"role": prompts.ASSISTANT, "content": prompts.planner_answer(k, sentence)})
            messages.append({"role": prompts.USER, "content": prompts.web_plan_feedback(sentence)})
        return prompts.render_prompt(messages, _eos(self.planner), "tulu")

    def _subgoal(self, run: TaskRun, index: int, reply: str) -> str | None:
        """The subgoal line to ground; None (the step recorded as a miss) when there is none."""
        if self.original:
            return reply.strip() if index == 0 else reply.split("No, I will keep planning.")[-1].strip()
        try:
            parsed = prompts.parse_planner_reply(reply)
        except ValueError as error:
            self._miss(run, index, f"planner reply: {error}")
            return None
        if parsed.stop:
            self._miss(run, index, "the planner stopped before the task's last step")
            return None
        return parsed.subgoal_line

    def _ground_prompt(self, run: TaskRun, index: int, reply: str, subgoal: str) -> str:
        if self.original:
            if not run.ground_prompt:
                run.ground_prompt = ("<|user|>\n" + prompts.ground_instruction("web_agent", run.task.task)
                                     + f"Subgoal to be grounded: {subgoal}\n<|assistant|>\n")
            else:
                run.ground_prompt += (run.ground_turns[-1]["content"].strip()
                                      + f"\n\n<|user|>\nSubgoal to be grounded: {subgoal}\n<|assistant|>\n")
            return run.ground_prompt
        first = not run.ground_turns
        content = (prompts.ground_instruction("web_agent", run.task.task) if first else "") + \
            prompts.ground_subgoal_prompt(subgoal)
        run.ground_turns.append({"role": prompts.USER, "content": content})
        return prompts.render_prompt(run.ground_turns, _eos(self.grounder), "tulu")

    def _remember_grounding(self, run: TaskRun, reply: str) -> None:
        if self.original:
            run.ground_turns.append({"role": prompts.ASSISTANT, "content": reply})
        else:
            run.ground_turns.append({"role": prompts.ASSISTANT, "content": reply.strip()})

    # ----------------------------------------------------------------- execution and scoring

    def _miss(self, run: TaskRun, index: int, error: str, **fields: Any) -> None:
        step = run.steps[index]
        score = score_step(None, "", "", step.gold_ids, step.op, step.value)
        run.records.append({"step": index, "element_id": None, "op": None, "value": None, "page": None,
                            "element_correct": False, "op_f1": score.op_f1, "step_success": False,
                            "gold_in_pool": fields.pop("gold_in_pool", None), "error": error, **fields})

    def _execute(self, run: TaskRun, index: int, reply: str) -> None:
        step = run.steps[index]
        pool = candidate_pool(run.task, step, self.ranker, self.top_k)
        gold_in_pool = any(element.id in step.gold_ids for element in pool.elements)
        episode_step = run.episode.steps[-1]
        try:
            actions = parse_web_actions(reply)
            call = parse_web_call(actions[0])
            if call.output is None:
                raise WebArgumentError("the action names no output page", actions[0].render(), web_shape(call.tool))
        except WebActionError as error:
            episode_step.calls.append(ToolCall(action=reply.strip(), tool="", args="", outputs=[], error=str(error)))
            self._miss(run, index, f"grounder reply: {error}", gold_in_pool=gold_in_pool)
            return
        query = call.query if call.tool != "SELECT" else f"{call.query} {call.text}"
        element = choose_element(self.ranker, element_query(query), pool.elements)
        value = call.text or ""
        score = score_step(element.id, call.tool, value, step.gold_ids, step.op, step.value)
        episode_step.calls.append(ToolCall(action=actions[0].render(), tool=call.tool, args=call.args(),
                                           outputs=list(actions[0].outputs),
                                           result=f"{element.id}: {element.text}"))
        run.records.append({"step": index, "element_id": element.id, "op": call.tool, "value": value,
                            "page": call.env_name, "element_correct": score.element_correct, "op_f1": score.op_f1,
                            "step_success": score.success, "gold_in_pool": gold_in_pool, "error": None,
                            "extra_actions": len(actions) - 1})

    def _execute_original(self, run: TaskRun, index: int, reply: str) -> None:
        step = run.steps[index]
        episode_step = run.episode.steps[-1]
        bookkeeping: list[dict[str, Any]] = []
        first_scored: dict[str, Any] | None = None
        for text in reply.strip().split("; "):
            action = read_original_action(text)
            entry: dict[str, Any] = {"action": text, "variable": action.variable, "name": action.name,
                                     "page": action.page, "query": action.query, "text": action.text,
                                     "executed": False}
            page = original_pool(step) if index == 0 else run.pages.get(action.page)
            if index == 0:
                run.pages["Env"] = page
            if page is None:
                entry["error"] = f"undefined page variable {action.page!r}"
            elif action.name in ("CLICK", "TYPE", "SELECT"):
                query = action.query + (SELECT_SUFFIX.format(text=action.text) if action.name == "SELECT" else "")
                element = choose_element(self.ranker, ranker_query(query, step), page.elements)
                element_match = element.text.replace("\n", " ") == page.elements[0].text.replace("\n", " ")
                op_match = action.name == step.op
                value_match = action.name == "CLICK" or (action.text or "").lower() == step.value.lower()
                entry.update(executed=True, ranker_query=query, top1_id=element.id, element_match=element_match,
                             op_match=op_match, value_match=value_match,
                             step_success=element_match and op_match and value_match)
                episode_step.calls.append(ToolCall(action=text, tool=action.name, args=action.args,
                                                   outputs=[action.variable], result=f"{element.id}: {element.text}"))
                if first_scored is None:
                    first_scored = {"element": element, "value": action.text or "", "name": action.name,
                                    "page": action.page, "pool": page}
            if index + 1 < len(run.steps):
                run.pages[action.variable] = original_pool(run.steps[index + 1])
            bookkeeping.append(entry)
        if first_scored is None:
            self._miss(run, index, "no executed web action", original=bookkeeping)
            return
        element = first_scored["element"]
        score = score_step(element.id, first_scored["name"], first_scored["value"], step.gold_ids, step.op, step.value)
        run.records.append({"step": index, "element_id": element.id, "op": first_scored["name"],
                            "value": first_scored["value"], "page": first_scored["page"],
                            "element_correct": score.element_correct, "op_f1": score.op_f1,
                            "step_success": score.success,
                            "gold_in_pool": any(e.id in step.gold_ids for e in first_scored["pool"].elements),
                            "error": None, "original": bookkeeping})


def _eos(generator) -> str:
    from lumos.agent import generator_eos

    return generator_eos(generator)
