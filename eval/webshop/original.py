"""WebShop as the released Lumos evaluation runs it: ``--prompt_style original``.

    python -m eval.webshop.run_eval --prompt_style original --model_name_or_path CHECKPOINTS \\
        --data_dir data/eval/webshop --save_dir results/webshop_original [--scoring original]

The released evaluation drives the unified checkpoints (``lumos_unified_plan_iterative``,
``lumos_unified_ground_iterative``) with its own WebShop instruction and two in-context examples
(:mod:`eval.webshop.original_prompts`), and executes four actions of its own:

- ``Search(query)``: ``search[query]``; the result names the first two clickables after
  ``back to search, next >`` with their titles: ``asin - title ** asin - title *``;
- ``Click(x)`` (``x`` or the value of a variable ``Rk``): every Click first replays, from the
  session as it stands, all the ``search[...]``/``click[...]`` actions of the goal so far, then
  clicks; the result is the page's clickables, or the reward once ``buy now`` ends the episode;
- ``FeatureRetrieve(Rk, Query: q)``: the three clickables after the first six (the option values
  of an item page) that a cross-encoder ranks highest against ``q``, joined by ``, ``;
- ``Pick(Item_names: R1, Item_features: [R3, R6], Query: q)``: the item, with its features, that
  the cross-encoder ranks highest.

It runs exactly 10 rounds, alternately one planner and one grounder call (so at most five
subgoals), resets the goal's session before each grounding, and never reads the planner's
``Yes, I will stop planning.``: whatever the planner says is grounded. A goal ends when a Click
returns a reward (``finished``), when an action cannot be executed (``tool_error``; an unknown
action name or an unparsable subgoal number: ``parse_error``), or when the 10 rounds are over
(``step_limit``). Replies are not stripped beyond what the original strips, nor parsed by
:mod:`lumos.format`: actions are read as the original reads them.

What the original does, and what this mode does about it:

- prompt-visible, reproduced (they are what the checkpoints were evaluated with):
  the grounder history repeats the prefill (``R1 = R1 = Search(...).``: the first reply is
  stored as ``"R1 = " + reply.strip("R1 = ")`` after a prompt that already ends in ``R1 = ``);
  the examples say ``The execution result for Subgoal k is ....`` while live turns say
  ``The executed result for Subgoal k is ...`` without a period, k being the round's number;
  the planner's raw reply (``No, I will keep planning. Subgoal 2: ...``) stays in its history;
  an empty result (FeatureRetrieve over an item without options) reads ``buy now``; Search
  results end in `` *``; FeatureRetrieve's query loses its last character (``... dollar``);
  a Click's clickables are shown as a Python list;
- not prompt-visible, reproduced because they decide which actions run: the replay of all
  earlier actions on every Click, search accepted on every page (WebShop's text environment
  does that), a Pick that indexes a second item of a one-item search fails the goal;
- scoring: the original divides the summed reward by the goals that ended (bought or failed),
  leaving out those still running after 10 rounds; that is ``--scoring original``; the default
  scoring averages over every goal;
- goals: the original evaluates WebShop's *synthetic* goals (its ``gym.make`` passes no
  ``human_goals``); ``--goals synthetic`` builds the same list in the same order, but each goal's
  price bound comes from WebShop's unseeded global generator there and a seeded one here, so the
  ``price lower than`` part of an instruction may differ; the default stays WebShop's human goals;
- not reproduced: the original keeps generating for goals that already ended and ignores the
  output: this mode does not ask the models for them; a generation failure ends the goal
  (``generation_error``) where the original would stop the whole run.

The reference run's printed line (``2.0 5 Average Reward: 0.4``) does not follow from its four
recorded goals, whose own bookkeeping gives one reward of 1.0 over three ended goals (the gaps in
its call numbering suggest a fifth goal whose transcript is not included); ``--scoring original``
follows the per-goal bookkeeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from eval.webshop import original_prompts as prompts
from lumos.episode import Episode, Step, ToolCall
from lumos.format import ORIGINAL_VARIABLE
from lumos.llm.base import GenerationError, Generator
from lumos.tools.web import Ranker
from lumos.webshop.env import WebShopActionError, WebShopTextEnv

PLANNER_MODULE = "lumos_unified_plan_iterative"
GROUNDER_MODULE = "lumos_unified_ground_iterative"
FEATURE_RANKER = "cross-encoder/stsb-roberta-large"
ROUNDS = 10  # planner and grounder calls together, alternating
MAX_NEW_TOKENS = 512
KEEP_PLANNING = "No, I will keep planning."
ACTIONS = ("Search", "Click", "FeatureRetrieve", "Pick")
_VARIABLE = ORIGINAL_VARIABLE


class OriginalActionError(ValueError):
    """An action the original evaluation could not execute (it ends the goal, as it did there)."""


def read_action(text: str) -> tuple[str, str, str]:
    """``R2 = Click(smpb000002)`` -> ``("R2", "Click", "smpb000002")``, read as the original reads it.

    The arguments run to the parenthesis that closes the first ``(``; what follows it (``.``) is
    ignored. Text without `` = `` or ``(`` is cut at the same positions the original cuts it,
    which yields a name that is no action.
    """
    equals = text.find(" = ")
    name_start = equals + 3
    variable = text[:name_start - 3].split(", ")[0]
    opening = text.find("(")
    name = text[name_start:opening]
    depth, closing = 0, opening - 1
    for char in text[opening:]:
        closing += 1
        depth += (char == "(") - (char == ")")
        if depth == 0:
            break
    return variable, name, text[opening + 1:closing]


def _top(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the k highest scores, best first (ties: the later index first, as argsort's tail)."""
    ascending = sorted(range(len(scores)), key=lambda index: scores[index])
    return ascending[len(ascending) - k:][::-1]


@dataclass
class OriginalShopSession:
    """One goal's shopping session, executing the original's four actions on the text environment."""

    env: WebShopTextEnv
    goal_index: int
    ranker: Ranker
    replay: list[str] = field(default_factory=list)  # the search[...]/click[...] actions so far
    variables: dict[str, Any] = field(default_factory=dict)
    env_log: list[dict[str, Any]] = field(default_factory=list)  # every reset and step, in order
    reward: float | None = None
    purchase: dict[str, Any] | None = None

    def reset(self) -> None:
        self.env.reset(self.goal_index)
        self.env_log.append({"reset": self.goal_index})

    def _step(self, action: str) -> tuple[float, bool]:
        was_done = self.env.state.page == "done"
        try:
            result = self.env.step(action)
        except WebShopActionError:  # WebShop does nothing for text it cannot read
            self.env_log.append({"action": action, "valid": False})
            return 0.0, False
        self.env_log.append({"action": action, "valid": result.info.get("valid", True)})
        if was_done:  # WebShop's page after a purchase has nothing to click: the action does nothing
            return 0.0, False
        if result.done:
            self.purchase = {"asin": result.info.get("asin"), "options": result.info.get("options"),
                             "reward_info": result.info.get("reward_info")}
        return result.reward, result.done

    # ------------------------------------------------------------------ the four actions

    def search(self, args: str) -> str:
        self.replay.append(f"search[{args}]")
        self._step(f"search[{args}]")
        observation = self.env.observation
        text = ""
        for item in self.env.available_actions()["clickables"][2:4]:
            marker = item.upper() + " [SEP] "
            start = observation.find(marker) + len(marker)
            end = observation[start:].find(" [SEP] ") + start
            text += f"{item} - {observation[start:end]} ** "
        return text[:-2]

    def click(self, args: str) -> list[str] | float:
        for action in list(self.replay):
            self._step(action)
        target = self.variables[args] if _VARIABLE.findall(args) else args
        action = f"click[{target}]"
        self.replay.append(action)
        reward, done = self._step(action)
        if not done:
            return self.env.available_actions()["clickables"] if self.env.state.page != "done" else []
        self.reward = reward
        return reward

    def feature_retrieve(self, args: str) -> str:
        label = "QUERY" if "QUERY" in args else "Query"
        query = args[args.find(f"{label}: ") + len(f"{label}: "):-1]
        variables = _VARIABLE.findall(args)
        if not variables:
            raise OriginalActionError(f"FeatureRetrieve names no variable: {args!r}")
        features = list(self.variables[variables[0]][6:])
        if not features:
            return ""
        scores = self.ranker.scores(query, [str(feature) for feature in features])
        return ", ".join(str(features[index]) for index in _top(scores, min(3, len(features))))

    def pick(self, args: str) -> str:
        label = "QUERY" if "QUERY" in args else "Query"
        names = args.split(", Item_features: ")[0].split("Item_names: ")[-1].strip()
        features = args.split(", Item_features: ")[-1].split(f", {label}: ")[0][1:-1].split(", ")
        query = args.split(f", {label}: ")[-1].strip()
        items = self.variables[names].split(" ** ")
        described = []
        for position, number in enumerate(sorted(int(name[1:]) for name in features)):
            value = self.variables.get(f"R{number}")
            if isinstance(value, str):
                described.append(items[position] + ". Available features: " + value)
        if not described:
            return items[0].split(" - ")[0].strip()
        scores = self.ranker.scores(query, described)
        return described[_top(scores, 1)[0]].split(" - ")[0]

    def execute(self, action: str) -> tuple[str, Any]:
        """Run one action; returns its variable and result (an empty result reads ``buy now``)."""
        variable, name, args = read_action(action)
        if name not in ACTIONS:
            raise OriginalActionError(f"{name!r} is not one of {', '.join(ACTIONS)} (in {action!r})")
        run = {"Search": self.search, "Click": self.click, "FeatureRetrieve": self.feature_retrieve,
               "Pick": self.pick}[name]
        result = run(args)
        if result == "":
            result = "buy now"
        self.variables[variable] = result
        return variable, result

    def record(self) -> dict[str, Any]:
        return {"goal_index": self.goal_index, "prompt_style": "original", "reward": self.reward,
                "purchase": self.purchase, "env_actions": [entry["action"] for entry in self.env_log
                                                           if "action" in entry],
                "resets": sum("reset" in entry for entry in self.env_log)}


@dataclass
class _Goal:
    episode: Episode
    session: OriginalShopSession
    plan_prompt: str
    ground_prompt: str = ""
    plan_reply: str = ""
    ground_reply: str = ""
    subgoal_results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def end(self, status: str, error: str | None = None) -> None:
        self.episode.end(status, error)  # type: ignore[arg-type]
        self.episode.seconds = time.perf_counter() - self.started


class OriginalWebShopRun:
    """The original evaluation's rounds over a batch of goals; models are loaded by the caller."""

    def __init__(self, planner: Generator, grounder: Generator, max_new_tokens: int = MAX_NEW_TOKENS,
                 keep_prompts: bool = False):
        self.planner = planner
        self.grounder = grounder
        self.max_new_tokens = max_new_tokens
        self.keep_prompts = keep_prompts
        self.prompts: list[tuple[str, str, str]] = []  # (episode id, module, prompt) as sent, when kept

    def run(self, goals: Sequence[tuple[str, str, OriginalShopSession]]) -> list[Episode]:
        """``(id, instruction, session)`` triples; one Episode per goal, in input order."""
        states = [_Goal(Episode(id=goal_id, task=task, formulation="iterative"), session,
                        prompts.first_plan_prompt(task))
                  for goal_id, task, session in goals]
        for round_number in range(ROUNDS):
            active = [state for state in states if not state.episode.done]
            if round_number % 2 == 0:
                self._plan(active, round_number)
            else:
                self._ground(active, round_number)
        for state in states:
            if not state.episode.done:
                state.end("step_limit", f"no purchase after {ROUNDS} rounds")
        return [state.episode for state in states]

    # ------------------------------------------------------------------ rounds

    def _plan(self, states: list[_Goal], round_number: int) -> None:
        if round_number > 0:
            for state in states:
                try:
                    numbers = sorted(int(key.split("Subgoal ")[-1]) for key in state.subgoal_results)
                    result = state.subgoal_results[f"Subgoal {numbers[-1]}"]
                except (ValueError, IndexError, KeyError) as error:
                    state.end("parse_error", f"subgoal numbering {list(state.subgoal_results)}: "
                                             f"{type(error).__name__}: {error}")
                    continue
                state.plan_prompt += (f"{state.plan_reply.strip()}\n\n{prompts.USER}The executed result for "
                                      f"Subgoal {round_number // 2} is {result}\n{prompts.ASSISTANT}")
        states = [state for state in states if not state.episode.done]
        replies, seconds = self._generate(self.planner, "plan", states, [s.plan_prompt for s in states])
        for state, reply in zip(states, replies):
            step = Step(index=round_number // 2 + 1, plan_seconds=seconds)
            state.episode.steps.append(step)
            if isinstance(reply, GenerationError):
                state.end("generation_error", f"planner: {reply}")
                continue
            state.plan_reply = step.plan_reply = reply
            step.subgoal = reply.split(KEEP_PLANNING)[-1].strip()

    def _ground(self, states: list[_Goal], round_number: int) -> None:
        for state in states:
            subgoal = state.plan_reply.split(KEEP_PLANNING)[-1].strip()
            if round_number == 1:
                state.ground_prompt = prompts.first_ground_prompt(state.episode.task, subgoal)
            else:
                state.ground_prompt += state.ground_reply.strip() + prompts.ground_subgoal_turn(subgoal)
        replies, seconds = self._generate(self.grounder, "ground", states, [s.ground_prompt for s in states])
        for state, reply in zip(states, replies):
            step = state.episode.steps[-1]
            step.ground_seconds = seconds
            if isinstance(reply, GenerationError):
                state.end("generation_error", f"grounder: {reply}")
                continue
            if round_number == 1:  # the prefill written once more before the reply (stripped of its letters)
                reply = prompts.GROUND_PREFILL + reply.strip(prompts.GROUND_PREFILL)
            state.ground_reply = step.grounding = reply
            self._execute(state, step, state.plan_reply.strip().split(":")[0].split(KEEP_PLANNING)[-1].strip())

    def _execute(self, state: _Goal, step: Step, subgoal_key: str) -> None:
        session = state.session
        session.reset()
        result: Any = None
        for text in state.ground_reply.strip().split("; "):
            started = time.perf_counter()
            variable, name, args = read_action(text)
            call = ToolCall(action=text, tool=name, args=args, outputs=[variable])
            step.calls.append(call)
            try:
                _, result = session.execute(text)
            except OriginalActionError as error:
                call.error = str(error)
                state.end("parse_error", call.error)
                return
            except Exception as error:  # noqa: BLE001 - per-goal boundary: the original ended the goal here too
                call.error = f"{type(error).__name__}: {error}"
                state.end("tool_error", call.error)
                return
            finally:
                call.seconds = time.perf_counter() - started
            call.result = str(result)
        state.subgoal_results[subgoal_key] = result
        state.episode.prediction = str(result)
        if isinstance(result, float):
            state.end("finished")

    def _generate(self, generator: Generator, module: str, states: list[_Goal],
                  texts: list[str]) -> tuple[list[str | GenerationError], float]:
        if not texts:
            return [], 0.0
        if self.keep_prompts:
            self.prompts += [(state.episode.id, module, text) for state, text in zip(states, texts)]
        started = time.perf_counter()
        try:
            replies = generator.try_generate(texts, stop=["\n"], max_new_tokens=self.max_new_tokens)
        except Exception as error:  # noqa: BLE001 - a backend that fails whole still ends each goal with a record
            replies = [GenerationError(f"{type(error).__name__}: {error}") for _ in texts]
        return list(replies), time.perf_counter() - started
