"""The plan -> ground -> execute loop (docs/FORMAT.md §5), advancing a whole batch of tasks together.

Iterative: every unfinished task asks its planner for the next subgoal (one batched call),
grounds it (one batched call), runs the grounded actions with the domain's toolbox, and tells
the planner the result; until the planner says ``Yes, I will stop planning.`` or ``max_steps``.
Onetime: plan everything (one call), ground everything (one call), execute.
On OpenAI-compatible servers the iterative loop has no round barrier (``Agent(barrier=None)``): each
task sends its next request as soon as its own reply is back, through the same per-task steps, so
the same replies give the same trajectories (the released protocol keeps its rounds).

Conversations come only from ``lumos.prompts`` (the strings training used). Model output is
untrusted: a reply that does not parse, or names a tool the domain lacks, ends that task with a
recorded error while the others go on. The loop knows nothing of a domain beyond its toolbox,
its name (prompt text) and the feedback function that turns a result into the planner's turn.

What the modules are sent and how their replies are read is the ``protocol``'s (``lumos.protocol``):
ours by default, or the released evaluation's (``OriginalProtocol``: its prompts byte for byte, its
round limit counted in module calls, a failed action that leaves the task running unexecuted).

    agent = Agent(planner, grounder, maths_toolbox(), domain="maths", formulation="iterative")
    episodes = agent.run([("q1", "Janet's ducks lay 16 eggs ...")])
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

from lumos import prompts
from lumos.domains import domain as lumos_domain
from lumos.episode import Episode, ExitStatus, Step
from lumos.format import FormatError, Plan, number_outputs, render_actions
from lumos.llm.base import GenerationError, Generator
from lumos.protocol import PlanTurn, Protocol, StepFailed, pending_call, protocol_for
from lumos.tools.base import Toolbox

Formulation = Literal["iterative", "onetime"]
FeedbackFunction = Callable[[int, str, str], str]
# A per-task toolbox: tools acting on that task's own environment (a web page, a shop session).
# Its ``episode_end`` (an ExitStatus) is set once its environment has ended the task (lumos.tools.base.Toolbox).
TaskToolboxFactory = Callable[[str, str], Toolbox]
DEFAULT_EOS = "</s>"  # LLaMA's, as the released checkpoints use


def result_feedback(index: int, subgoal_text: str, result: str) -> str:
    """Maths and complex QA: the planner is told the subgoal's last result."""
    return prompts.plan_feedback(index, result)


def completion_feedback(index: int, subgoal_text: str, result: str) -> str:
    """Web agent: the planner is told which subgoal was done."""
    return prompts.web_plan_feedback(subgoal_text)


def generator_eos(generator: Generator) -> str:
    """The EOS text a generator's model was trained with (``.eos`` where the backend knows it)."""
    eos = getattr(generator, "eos", None)
    return eos if isinstance(eos, str) and eos else DEFAULT_EOS


@dataclass
class _TaskState:
    """What one running task carries between rounds (not saved; the Episode is)."""

    episode: Episode
    plan_turns: list[dict[str, str]]
    ground_turns: list[dict[str, str]]
    variables: dict[str, str]
    started: float
    toolbox: Toolbox | None = None
    turn: PlanTurn | None = None  # the newest subgoal's reading, while it is grounded
    failed: str | None = None  # a failure the protocol lets the task run on after (ends it as tool_error)
    position: int = 0  # in the input


class _Entrants:
    """Tasks waiting to enter, in input order, and the report of each episode once it has ended."""

    def __init__(self, states: list[_TaskState], start: Callable[[_TaskState], None],
                 on_done: Callable[[Episode], None] | None):
        self.states = states
        self.waiting = list(range(len(states)))[::-1]  # popped from the end: input order
        self._start = start
        self._on_done = on_done
        self._entered: list[_TaskState] = []

    def admit(self, count: int) -> list[_TaskState]:
        """Up to ``count`` waiting tasks, started."""
        admitted = []
        while self.waiting and len(admitted) < count:
            state = self.states[self.waiting.pop()]
            self._start(state)
            admitted.append(state)
        self._entered += admitted
        return admitted

    def report(self, everyone: bool = False) -> None:
        """Hand every episode that ended since the last report to ``on_done``, in input order
        (``everyone``: tasks that never entered too, ended by a failure of the whole backend)."""
        if everyone:
            self._entered += [self.states[k] for k in self.waiting]
            self.waiting = []
        ended = [state for state in self._entered if state.episode.done]
        if not ended:
            return
        self._entered = [state for state in self._entered if not state.episode.done]
        if self._on_done is not None:
            for state in sorted(ended, key=lambda state: state.position):
                self._on_done(state.episode)


class Agent:
    """Planner + grounder + toolbox for one domain and formulation; models are loaded by the caller, once.

    ``protocol`` (``lumos.protocol``) decides what the modules are sent and how their replies are
    read; ``prompt_style="original"`` without one picks the released evaluation's protocol.
    ``barrier``: whether iterative tasks advance round by round together; ``None`` (default) drops
    the round barrier where it can (both modules OpenAI-compatible servers, a protocol with
    independent tasks): each task then moves on as soon as its own reply is back, with the same
    trajectories for the same replies.
    """

    STOP = ("\n",)  # each module's reply ends at its first newline

    def __init__(self, planner: Generator, grounder: Generator, toolbox: Toolbox | None, *, domain: str,
                 formulation: Formulation = "iterative", max_steps: int = 10,
                 feedback: FeedbackFunction | None = None, prompt_style: prompts.PromptStyle = "tulu",
                 planner_eos: str | None = None, grounder_eos: str | None = None, max_new_tokens: int | None = None,
                 task_toolbox: TaskToolboxFactory | None = None, protocol: Protocol | None = None,
                 barrier: bool | None = None):
        if toolbox is None and task_toolbox is None:
            raise ValueError("give a toolbox or a task_toolbox factory")
        if formulation not in ("iterative", "onetime"):
            raise ValueError(f"formulation must be 'iterative' or 'onetime', got {formulation!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.planner = planner
        self.grounder = grounder
        self.toolbox = toolbox
        self.domain = domain
        self.formulation = formulation
        self.max_steps = max_steps
        self.feedback = feedback or lumos_domain(domain).plan_feedback
        self.protocol = protocol or protocol_for(prompt_style, domain=domain, formulation=formulation)
        self.prompt_style = self.protocol.prompt_style
        self.planner_eos = planner_eos or generator_eos(planner)
        self.grounder_eos = grounder_eos or generator_eos(grounder)
        self.max_new_tokens = max_new_tokens or self.protocol.max_new_tokens
        self.task_toolbox = task_toolbox
        streams = all(callable(getattr(g, "completion_stream", None)) for g in (planner, grounder))
        possible = streams and self.protocol.tasks_independent and self.protocol.round_limit is None
        if barrier is False and not possible:
            raise ValueError("barrier=False needs OpenAI-compatible planner and grounder (completion_stream) and a "
                             "protocol whose tasks are independent (not the released evaluation's)")
        # Without a round barrier: iterative tasks on servers each advance as soon as their own reply is back.
        self.barrier_free = possible if barrier is None else not barrier

    # ------------------------------------------------------------------ public

    def run(self, tasks: Sequence[tuple[str, str]], *, active: int | None = None,
            on_done: Callable[[Episode], None] | None = None) -> list[Episode]:
        """Run ``(id, task)`` pairs; one Episode per task, in input order.

        ``active``: at most this many tasks in progress at once; a task that ends hands its place to
        the next waiting one (at the next round, or at once without round barriers), so every module
        call stays full while conversations, cached keys and values and per-task environments stay
        bounded. ``None``: all tasks at once. Ignored by a protocol whose tasks depend on each other
        (the released QA evaluation's, which runs every task round by round in input order).
        ``on_done``: called with each episode as soon as it has ended (a caller writes it there).
        """
        if active is not None and active < 1:
            raise ValueError(f"active must be at least 1, got {active}")
        states = [_TaskState(Episode(id=str(task_id), task=task, formulation=self.formulation),
                             [{"role": prompts.USER, "content": prompts.plan_task_prompt(task)}], [], {},
                             time.perf_counter(), position=k)
                  for k, (task_id, task) in enumerate(tasks)]
        if active is None or not self.protocol.tasks_independent:
            active = max(1, len(states))
        entrants = _Entrants(states, self._start, on_done)
        if self.formulation == "iterative":
            self._run_iterative(entrants, active)
        else:
            while entrants.waiting:
                self._run_onetime(entrants.admit(active))
                entrants.report()
        return [state.episode for state in states]

    def _start(self, state: _TaskState) -> None:
        """A task enters: its clock starts, its environment (if any) is made, the protocol sees it."""
        state.started = time.perf_counter()
        state.toolbox = (self.task_toolbox(state.episode.id, state.episode.task) if self.task_toolbox
                         else self.toolbox)
        self.protocol.start(state.episode)

    # ------------------------------------------------------------------ iterative

    def _run_iterative(self, entrants: _Entrants, active: int) -> None:
        if self.barrier_free:
            self._run_without_barrier(entrants, active)
            return
        rounds = self.protocol.round_limit
        used = 0  # module calls so far (a round: one planner or one grounder call)
        running: list[_TaskState] = []
        while True:
            entrants.report()
            running = [s for s in running if not s.episode.done]
            running += entrants.admit(active - len(running))
            if not running:
                return
            if rounds is not None and used >= rounds:
                for state in running:
                    _finish(state, *self._at_limit(state, f"no stop within {rounds} rounds (planner or grounder calls)"))
                entrants.report()
                return
            planned = self._plan_round(running)
            used += 1
            if rounds is not None and used >= rounds:
                continue  # the limit falls before the grounder's turn
            grounded = self._ground_round(planned)
            used += 1
            for state in grounded:
                self._run_step(state)

    def _run_step(self, state: _TaskState) -> None:
        """Execute a task's grounded step and tell its planner the outcome (or end the task)."""
        step = state.episode.steps[-1]
        if state.failed is None:
            self._execute_step(state, step)
        if state.episode.done:
            return
        state.plan_turns.append({"role": prompts.USER,
                                 "content": self.protocol.feedback(step, state.episode, self.feedback)})
        if self.protocol.round_limit is None and len(state.episode.steps) >= self.max_steps:
            _finish(state, "step_limit", f"no stop after {self.max_steps} subgoals")

    def _run_without_barrier(self, entrants: _Entrants, active: int) -> None:
        """The iterative loop on OpenAI-compatible servers, each task advancing as soon as its own reply is back.

        The same per-task steps as the round-based loop (``_take_plan``, ``_take_grounding``,
        ``_run_step``), so the same replies give the same trajectories; but no task waits for the
        slowest request of a round, and the servers' continuous batching stays full. At most the
        streams' ``room`` requests are in flight; the others wait their turn in order. A task that
        ends hands its place to the next waiting one at once.
        """
        from collections import deque

        from lumos.llm.openai_backend import StreamGroup

        states = entrants.states
        with StreamGroup() as group:
            stop, limit = list(self.STOP), self.max_new_tokens
            plans = group.add(self.planner.completion_stream(stop=stop, max_new_tokens=limit))
            grounds = group.add(self.grounder.completion_stream(stop=list(stop), max_new_tokens=limit))
            waiting: dict[Any, deque] = {plans: deque(), grounds: deque()}
            sent: dict[int, float] = {}

            def ask(stream, index: int) -> None:
                state = states[index]
                turns, eos = ((state.plan_turns, self.planner_eos) if stream is plans
                              else (state.ground_turns, self.grounder_eos))
                waiting[stream].append((index, self._render(turns, eos)))

            def enter(count: int) -> None:
                for state in entrants.admit(count):
                    ask(plans, state.position)

            enter(active)
            while any(waiting.values()) or not group.idle:
                for stream, queued in waiting.items():
                    while queued and stream.room > 0:
                        index, text = queued.popleft()
                        sent[index] = time.perf_counter()
                        stream.submit(index, text)
                try:
                    finished = group.completed()
                except Exception as error:  # noqa: BLE001 - a backend that fails whole still ends each task with a record
                    for state in states:  # every task, started or not, ends with this record
                        if not state.episode.done:
                            _finish(state, "generation_error", _backend_failure(error))
                    entrants.report(everyone=True)
                    return
                for stream, index, reply in finished:
                    state = states[index]
                    seconds = time.perf_counter() - sent.pop(index)
                    reply = _cleaned(reply)
                    if stream is plans:
                        if self._take_plan(state, reply, seconds):
                            self._ask_grounding(state)
                            ask(grounds, index)
                    elif self._take_grounding(state, reply, seconds):
                        self._run_step(state)
                        if not state.episode.done:
                            ask(plans, index)
                    if state.episode.done:
                        entrants.report()
                        enter(1)

    def _at_limit(self, state: _TaskState, message: str) -> tuple[ExitStatus, str]:
        return ("tool_error", state.failed) if state.failed is not None else ("step_limit", message)

    def _at_end(self, state: _TaskState) -> tuple[ExitStatus, str | None]:
        return ("tool_error", state.failed) if state.failed is not None else ("finished", None)

    def _plan_round(self, states: list[_TaskState]) -> list[_TaskState]:
        """Ask every planner for its next subgoal; returns the tasks that got one."""
        replies, seconds = self._generate(self.planner, [self._render(s.plan_turns, self.planner_eos) for s in states])
        return [state for state, reply in zip(states, replies) if self._take_plan(state, reply, seconds)]

    def _take_plan(self, state: _TaskState, reply: str | GenerationError, seconds: float) -> bool:
        """Read one task's planner reply; True when it proposed a subgoal to ground."""
        index = len(state.episode.steps) + 1
        step = Step(index=index, plan_seconds=seconds)
        if isinstance(reply, GenerationError):
            _finish(state, "generation_error", f"planner: {reply}")
            return False
        step.plan_reply = reply
        try:
            turn = self.protocol.read_plan(reply, index)
        except Exception as error:  # noqa: BLE001 - per-task boundary: any failure to read a reply ends that task
            state.episode.steps.append(step)
            _finish(state, "parse_error", f"planner reply for subgoal {index}: {_describe(error)}")
            return False
        if turn.stop:
            if index == 1:
                state.episode.steps.append(step)
                _finish(state, "parse_error", "planner stopped before proposing any subgoal")
            elif state.failed is not None:
                _finish(state, "tool_error", state.failed)
            else:
                try:
                    self.protocol.on_stop(state.episode, state.toolbox)
                except StepFailed as failure:  # e.g. the final-answer call of the original QA evaluation
                    _finish(state, "tool_error", str(failure))
                    return False
                _finish(state, "finished")
            return False
        step.subgoal = turn.subgoal
        state.turn = turn
        state.episode.steps.append(step)
        state.plan_turns.append({"role": prompts.ASSISTANT, "content": turn.history})
        return True

    def _ground_round(self, states: list[_TaskState]) -> list[_TaskState]:
        """Ground every task's newest subgoal; returns the tasks whose grounding was read."""
        for state in states:
            self._ask_grounding(state)
        texts = [self._render(s.ground_turns, self.grounder_eos) for s in states]
        replies, seconds = self._generate(self.grounder, texts)
        return [state for state, reply in zip(states, replies) if self._take_grounding(state, reply, seconds)]

    def _ask_grounding(self, state: _TaskState) -> None:
        """Add the user turn asking the grounder for the newest subgoal's actions."""
        step = state.episode.steps[-1]
        content = self.protocol.ground_turn(self.domain, state.episode.task, step.index, state.turn,
                                            state.episode.steps[:-1])
        state.ground_turns.append({"role": prompts.USER, "content": content})

    def _take_grounding(self, state: _TaskState, reply: str | GenerationError, seconds: float) -> bool:
        """Read one task's grounder reply; True when its actions were read (the step is ready to run)."""
        step = state.episode.steps[-1]
        step.ground_seconds = seconds
        history = self._read_grounding(state, step, reply)
        if history is None:
            return False
        state.ground_turns.append({"role": prompts.ASSISTANT, "content": history})
        return True

    # ------------------------------------------------------------------ onetime

    def _run_onetime(self, states: list[_TaskState]) -> None:
        replies, seconds = self._generate(self.planner, [self._render(s.plan_turns, self.planner_eos) for s in states])
        planned: list[tuple[_TaskState, str]] = []
        for state, reply in zip(states, replies):
            if isinstance(reply, GenerationError):
                _finish(state, "generation_error", f"planner: {reply}")
                continue
            try:
                subgoals, ground_text = self.protocol.read_onetime_plan(reply)
            except Exception as error:  # noqa: BLE001 - per-task boundary: any failure to read a reply ends that task
                state.episode.steps.append(Step(index=1, plan_reply=reply, plan_seconds=seconds))
                _finish(state, "parse_error", f"onetime plan: {_describe(error)}")
                continue
            state.episode.steps = [Step(index=k, subgoal=text, plan_seconds=seconds)
                                   for k, text in enumerate(subgoals, start=1)]
            state.episode.steps[0].plan_reply = reply
            planned.append((state, ground_text))
        prompts_text = [self._render([{"role": prompts.USER, "content": self.protocol.onetime_ground_prompt(
                                          self.domain, state.episode.task, ground_text)}], self.grounder_eos)
                        for state, ground_text in planned]
        replies, seconds = self._generate(self.grounder, prompts_text)
        for (state, _), reply in zip(planned, replies):
            step = state.episode.steps[0]
            step.ground_seconds = seconds
            if self._read_grounding(state, step, reply) is None:
                continue
            # The onetime grounder answers for all subgoals at once; the calls are kept on the first step.
            self._execute_step(state, step)
            if not state.episode.done:
                _finish(state, *self._at_end(state))

    # ------------------------------------------------------------------ shared

    def _read_grounding(self, state: _TaskState, step: Step, reply: str | GenerationError) -> str | None:
        """The grounder turn to keep, with ``step.calls`` set; None when the task ended here."""
        if isinstance(reply, GenerationError):
            _finish(state, "generation_error", f"grounder: {reply}")
            return None
        step.grounding = reply
        try:
            return self.protocol.read_grounding(reply, step, state.toolbox, state.variables)
        except Exception as error:  # noqa: BLE001 - per-task boundary: any failure to read a reply ends that task
            _finish(state, "parse_error", f"grounding of subgoal {step.index}: {_describe(error)}")
            return None

    def _execute_step(self, state: _TaskState, step: Step | None = None) -> None:
        step = step or state.episode.steps[-1]
        try:
            self.protocol.execute(step, state.toolbox, state.variables, state.episode)
        except StepFailed as failure:
            if self.protocol.end_on_tool_error:
                _finish(state, "tool_error", str(failure))
                return
            state.failed = str(failure)
        except Exception as error:  # noqa: BLE001 - per-task boundary: a failure while executing ends that task
            _finish(state, "tool_error", _describe(error))
            return
        ended = state.toolbox.episode_end
        if ended is not None and not state.episode.done:
            _finish(state, ended)

    def _render(self, turns: list[dict[str, str]], eos: str) -> str:
        return self.protocol.render(turns, eos)

    def _generate(self, generator: Generator, texts: list[str]) -> tuple[list[str | GenerationError], float]:
        if not texts:
            return [], 0.0
        started = time.perf_counter()
        try:
            replies = generator.try_generate(texts, stop=list(self.STOP), max_new_tokens=self.max_new_tokens)
        except Exception as error:  # noqa: BLE001 - a backend that fails whole still ends each task with a record
            replies = [GenerationError(_backend_failure(error)) for _ in texts]
        return [_cleaned(r) for r in replies], time.perf_counter() - started


# --------------------------------------------------------------------------- helpers


def _cleaned(reply: str | GenerationError) -> str | GenerationError:
    """A module's reply as the loop reads it: text without surrounding whitespace, an error as it is."""
    return reply if isinstance(reply, GenerationError) else reply.strip()


def _backend_failure(error: Exception) -> str:
    """What a task records when the whole backend failed (every request of the call or stream)."""
    return f"{type(error).__name__}: {error}"


def _describe(error: Exception, limit: int = 2000) -> str:
    """An error as recorded in an episode: a parse error's own text, anything else with its type; bounded."""
    text = str(error) if isinstance(error, FormatError) else f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _finish(state: _TaskState, status: ExitStatus, error: str | None = None) -> None:
    state.episode.end(status, error)
    state.episode.seconds = time.perf_counter() - state.started


def _execute_calls(toolbox: Toolbox, state: _TaskState, step: Step) -> None:
    """Run a step's calls in order (our protocol); the first failure ends the task as ``tool_error``."""
    try:
        Protocol().execute(step, toolbox, state.variables, state.episode)
    except StepFailed as failure:
        _finish(state, "tool_error", str(failure))
        return
    ended = toolbox.episode_end
    if ended is not None:
        _finish(state, ended)


def execute_plan(task_id: str, task: str, plan: Plan, toolbox: Toolbox) -> Episode:
    """Gold-plan mode: run an annotation's own actions (results dropped), to measure the tools alone."""
    started = time.perf_counter()
    episode = Episode(id=str(task_id), task=task, formulation="oracle")
    state = _TaskState(episode, [], [], {}, started)
    numbered = number_outputs(plan)
    for k, subgoal in enumerate(numbered.subgoals, start=1):
        step = Step(index=k, subgoal=subgoal.text, grounding=render_actions(subgoal.actions),
                    calls=[pending_call(action.without_result()) for action in subgoal.actions])
        episode.steps.append(step)
        _execute_calls(toolbox, state, step)
        if episode.done:
            return episode
    _finish(state, "finished")
    return episode
