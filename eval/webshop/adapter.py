"""WebShop as the agent loop sees it: one episode per goal, stepped with text actions.

Lumos grounds WebShop subgoals to ``Search(query)`` / ``Click(item)`` actions; they map onto the
environment's ``search[...]`` / ``click[...]``. Every episode ends with a status; the benchmark's
metrics (``eval.webshop.benchmark.shop_metrics``) count ALL episodes, one that did not end in a
purchase scoring 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from lumos.episode import ExitStatus
from lumos.format import Action
from lumos.webshop.env import WebShopActionError, WebShopTextEnv, parse_webshop_action

DEFAULT_MAX_STEPS = 15


def to_webshop_action(action: Action | str) -> str:
    """``Search(red earbuds)`` -> ``search[red earbuds]``; text already in WebShop form passes through."""
    if isinstance(action, str):
        parse_webshop_action(action)
        return action.strip()
    name = action.tool.lower()
    if name not in ("search", "click"):
        raise WebShopActionError(f"{action.tool!r} is not a WebShop action (expected Search or Click)")
    argument = action.args.strip()
    if len(argument) >= 2 and argument[0] == argument[-1] == '"':
        argument = argument[1:-1]
    return f"{name}[{argument}]"


@dataclass
class Episode:
    id: str
    goal_index: int
    instruction: str
    actions: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    reward: float = 0.0
    status: ExitStatus = "running"  # lumos.episode's exit statuses
    error: str = ""
    reward_info: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def start_episode(env: WebShopTextEnv, goal_index: int) -> Episode:
    observation = env.reset(goal_index)
    return Episode(id=f"webshop_{goal_index}", goal_index=goal_index, instruction=env.instruction,
                   observations=[observation])


def step_episode(env: WebShopTextEnv, episode: Episode, action: Action | str,
                 max_steps: int = DEFAULT_MAX_STEPS) -> str:
    """Apply one action; returns the new observation. ``env`` must be on this episode's goal."""
    try:
        text = to_webshop_action(action)
    except WebShopActionError as error:
        episode.status, episode.error = "parse_error", str(error)
        return env.observation
    result = env.step(text)
    episode.actions.append(text)
    episode.observations.append(result.observation)
    if result.done:
        episode.status, episode.reward = "finished", result.reward
        episode.reward_info = result.info.get("reward_info", {})
    elif len(episode.actions) >= max_steps:
        episode.status = "step_limit"
    return result.observation


def replay(env: WebShopTextEnv, goal_index: int, actions: Iterable[Action | str],
           max_steps: int = DEFAULT_MAX_STEPS) -> Episode:
    """Run a scripted action sequence as one episode."""
    return play(env, start_episode(env, goal_index), actions, max_steps)


def play(env: WebShopTextEnv, episode: Episode, actions: Iterable[Action | str],
         max_steps: int = DEFAULT_MAX_STEPS) -> Episode:
    """Run a scripted action sequence in an episode already started on ``env``; returns that episode."""
    for action in actions:
        if episode.status != "running":
            break
        step_episode(env, episode, action, max_steps)
    if episode.status == "running":  # the script ended before the episode did: its actions were the limit
        episode.status, episode.error = "step_limit", f"no purchase within the {len(episode.actions)} scripted actions"
    return episode
