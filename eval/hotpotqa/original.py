"""The released complex-QA evaluation (``eval/{hotpotqa,strategyqa}/run_eval.py``) as a protocol.

``--prompt_style original`` on HotpotQA or StrategyQA runs :class:`OriginalQAProtocol`: the loop
of :class:`lumos.protocol.OriginalProtocol` (raw replies in later prompts, stop as a substring,
512 new tokens, no BOS, 10 rounds of one module call each) with the QA parts of the original:

* actions run as the original's ``execute`` ran them (:class:`lumos.tools.qa.OriginalQAExecutor`):
  KnowledgeQuery keeps a list of ``"<title> *** <sentence>"``, QA gives ``"Question: q; Answer: a"``;
  an error the original caught records ``""`` under the name ``""`` and the task goes on;
* a later grounding turn repeats the planner's reply after ``No, I will keep planning.`` and gives
  only the ``Answer:`` part of each earlier subgoal's result, under the planner's own label
  (``Subgoal 2``), labels in string order, results without ``Answer: `` left out;
* the planner is told the text after the last ``=`` of ``<last action> = <its result>``;
* when the planner stops, ``decide_final_ans`` asks QA the task's question (StrategyQA: plus
  `` Must answer yes/no.``) over every result holding ``Question: ``; the answer is
  ``original["results"]["final_ans"]``, which ``--scoring original`` reads.

Where the original differs from what we reproduce (each scores the same, 0, in both):

* an action the original's ``execute`` returns nothing for (an unknown name, ``Code``) loses the
  task's results; the original then records, and shows the planner and the grounder, whatever
  result the *previous* action of the whole run left (often another example's). We do the same
  (one protocol object per run, tasks in input order), so with the whole file in one batch the
  prompts match (with several batches the previous action may be another one); the task ends
  ``tool_error``.
* HotpotQA crashed the whole run when a subgoal ended with KnowledgeQuery (``str + list``) and
  when the very first action of the run failed; StrategyQA onetime crashed on any unknown action.
  Here only that task ends (``tool_error``), its record written as StrategyQA writes it
  (``str(list)``).
* The original fell back on a Google search when QA found no answer; offline we ask the knowledge
  source (see ``OriginalQAExecutor``).
"""

from __future__ import annotations

import weakref
from typing import Any

from lumos import prompts
from lumos.episode import Episode, Step
from lumos.protocol import OriginalProtocol, PlanTurn, StepFailed
from lumos.tools.base import Toolbox, ToolError
from lumos.tools.qa import ActionContext, OriginalActionFailed, OriginalQAExecutor, answer_part, original_executor

KEEP_PLANNING = "No, I will keep planning."
ROUNDS = 10  # the original's loop: five planner and five grounder calls per task


def value_text(value: Any) -> str:
    """A stored value as the original wrote it into an action record (``str`` of a list)."""
    return value if isinstance(value, str) else str(value)


def subgoal_label(reply: str) -> str:
    """``"No, I will keep planning. Subgoal 2: ..."`` -> ``"Subgoal 2"`` (the original's ``cur_subgoal_idx``)."""
    return reply.strip().split(":")[0].split(KEEP_PLANNING)[-1].strip()


class OriginalQAProtocol(OriginalProtocol):
    """The released HotpotQA / StrategyQA evaluation (``flavour``), iterative or onetime."""

    def __init__(self, flavour: str, *, onetime: bool = False, rounds: int | None = ROUNDS):
        super().__init__(rounds)
        self.flavour = flavour
        self.onetime = onetime
        self.last_value: Any = ""  # the original's execution_results: the last value of any task's action
        self._executors: dict[int, tuple[Toolbox, OriginalQAExecutor]] = {}  # id(toolbox) -> (toolbox, executor)
        # id(step) -> (planner label, the subgoal's last value); an entry goes when its step is collected
        self._subgoal_values: dict[int, tuple[str, Any]] = {}

    def render(self, turns, eos: str) -> str:
        """The prompt as the original concatenated it: earlier replies stripped, user turns as built.

        The base rendering strips user turns too, which only matters here: a grounding turn ends with
        the last ``Answer:`` part as QA gave it, trailing spaces or newlines included.
        """
        text = ""
        for turn in turns:
            header = prompts.ROLE_HEADERS[turn["role"]]
            if turn["role"] == prompts.ASSISTANT:
                text += header + turn["content"].strip() + "\n\n"
            else:
                content = turn["content"]
                text += header + content.removesuffix("\n") + "\n"
        return text + prompts.ROLE_HEADERS[prompts.ASSISTANT]

    # ------------------------------------------------------------------ grounding

    def ground_turn(self, domain: str, task: str, index: int, turn: PlanTurn, earlier: list[Step]) -> str:
        if index == 1:
            return prompts.ground_instruction(domain, task) + prompts.ground_subgoal_prompt(turn.ground_line)
        text = (f"Subgoal to be grounded: {turn.ground_line.split(KEEP_PLANNING)[-1].strip()} "
                "The grounding could be based on the following results:")
        book: dict[str, Any] = {}  # the original's subgoal_results: planner label -> that subgoal's last value
        for step in earlier:
            if id(step) in self._subgoal_values:
                label, value = self._subgoal_values[id(step)]
                book[label] = value
        for label in sorted(book):
            if isinstance(book[label], str) and "Answer: " in book[label]:
                text += f" The execution result for {label} is {answer_part(book[label])}"
        return text + "\n"

    # ------------------------------------------------------------------ execution

    def execute(self, step: Step, toolbox: Toolbox, variables: dict[str, Any], episode: Episode) -> None:
        book = episode.original
        if book["results"] is None:
            return  # the original executes nothing more for a task whose results are lost
        executor = self._executor(toolbox)
        reply = ((episode.steps[0].plan_reply if self.onetime else step.plan_reply) or "").strip()
        subgoals = tuple(reply.split("; "))
        book["subgoals"].append(reply)
        failure = None
        for k, call in enumerate(step.calls):
            context = ActionContext(question=episode.task, subgoals=subgoals, index=k,
                                    last_of_onetime=self.onetime and k == len(step.calls) - 1)
            name = call.outputs[0] if call.outputs else ""
            try:
                stored, value = executor.execute(call.tool, call.args, name, book["results"], context)
            except OriginalActionFailed as error:
                call.error = str(error)
                failure = failure or call.error
                book["results"] = None
                if self.onetime:
                    break  # HotpotQA onetime stops there; StrategyQA onetime crashed the whole run
                continue  # the rest of the step still runs, against a lost table, as there
            except ToolError as error:  # a setup failure (no QA model, no knowledge source): the task ends
                call.error = str(error)
                book["results"] = None
                raise StepFailed(call.error) from error
            self.last_value = value
            call.result = value_text(value)
            if book["results"] is not None:
                book["results"][stored] = value
                episode.prediction = answer_part(call.result)  # what standard scoring reads
        if not self.onetime and step.calls:
            if id(step) not in self._subgoal_values:
                weakref.finalize(step, self._subgoal_values.pop, id(step), None)
            self._subgoal_values[id(step)] = (subgoal_label(reply), self.last_value)
            book["actions"].append(f"{step.calls[-1].action} = {value_text(self.last_value)}")
        if failure is not None:
            raise StepFailed(failure)

    def on_stop(self, episode: Episode, toolbox: Toolbox) -> None:
        """``decide_final_ans`` when the planner stops, for a task whose results are intact and non-empty."""
        results = episode.original["results"] if episode.original else None
        if not results:
            return
        try:
            answer = self._executor(toolbox).decide_final_answer(results, episode.task)
        except ToolError as error:  # the QA model failed: no final answer, the task ends tool_error
            raise StepFailed(f"decide_final_ans: {error}") from error
        results["final_ans"] = answer
        episode.prediction = answer_part(answer)

    def _executor(self, toolbox: Toolbox) -> OriginalQAExecutor:
        entry = self._executors.get(id(toolbox))
        if entry is None or entry[0] is not toolbox:
            entry = self._executors[id(toolbox)] = (toolbox, original_executor(toolbox, self.flavour))
        return entry[1]
