"""WebShop through the shared runner: each goal is one episode of the Lumos agent loop.

The grounder's actions act on that goal's own shopping session (:class:`WebShopTextEnv`):

- the web agent's vocabulary, as the Mind2Web-trained modules write it:
  ``TYPE(Env, QUERY: search bar, TEXT: red earbuds)`` -> ``search[red earbuds]``;
  ``CLICK(Env, QUERY: Buy Now)`` -> ``click[buy now]``, the Query resolved to one of the page's
  clickables (exact text first, else the BM25 ranker over the clickables, a product's title
  standing beside its ASIN); ``SELECT(Env, QUERY: size, TEXT: 8)`` -> ``click[8]``, the value resolved
  among the page's clickables the same way;
- WebShop's own actions, ``Search(red earbuds)`` / ``Click(buy now)``
  (:func:`eval.webshop.adapter.to_webshop_action`).

An action that does not apply on the page leaves it unchanged, as in WebShop, and still counts
toward the step limit (``--max_steps`` environment actions). The planner is told the page the
subgoal led to (``--feedback observation``, default) or, as the web planner was trained, only
what was done (``--feedback completion``). Buying ends the episode with the WebShop reward; an
episode ended any other way scores 0, and every goal counts in the averages.

``--prompt_style original`` runs the released evaluation instead (:mod:`eval.webshop.original`:
the unified checkpoints, its prompts, its four actions, its 10 rounds); ``--scoring original``
divides the summed reward by the goals that ended (bought or failed) as it did, not by all goals.

    python -m eval.webshop.run_eval --data_dir data/eval/webshop/ --max_num_examples 500 \\
        --save_dir results/webshop --model_name_or_path MODEL_DIR --eval_batch_size 8 --formulation lumos_iterative
    python -m eval.webshop.run_eval --save_dir results/webshop_replay --oracle A.jsonl

Without ``--data_dir`` the shipped sample catalogue is used. ``--oracle A.jsonl`` runs recorded
actions (JSONL lines ``{"goal_index": i, "actions": ["search[...]", "click[...]", ...]}``) through
each goal's session, at most ``--max_steps`` of them: the offline check of the environment and the
scoring; a goal without a line, or whose actions end before a purchase, scores 0. The rewards are
averaged by the runner with every other run's (all goals count).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any, Callable

from eval.runner import GOLD_ORACLE, Benchmark, EvalConfig, EvalSetupError, Example, check_ranker_spec, load_ranker
from eval.webshop.adapter import DEFAULT_MAX_STEPS
from eval.webshop.adapter import Episode as ShopEpisode
from eval.webshop.adapter import play, start_episode, step_episode, to_webshop_action
from lumos.format import Action
from lumos.jsonl import BadRecord, read_records
from lumos.tools.base import Tool, Toolbox, ToolError
from lumos.tools.web import BM25Ranker, Element, Ranker, WebPage, parse_web_call, rank
from lumos.vocabulary import vocabulary
from lumos.webshop.catalogue import GOAL_KINDS, SAMPLE_DIR, Catalogue, load_catalogue
from lumos.webshop.env import WebShopActionError, WebShopTextEnv
from lumos.webshop.search import ProductSearchEngine

FEEDBACKS = ("observation", "completion")
MAX_OBSERVATION_CHARS = 2000  # what the planner is shown of a page


class ShopSession:
    """One goal's shopping session: the environment, the episode record, the step limit."""

    def __init__(self, env: WebShopTextEnv, goal_index: int, max_steps: int, ranker: Ranker):
        self.env = env
        self.max_steps = max_steps
        self.ranker = ranker
        self.episode: ShopEpisode = start_episode(env, goal_index)

    @property
    def episode_end(self) -> str | None:
        status = self.episode.status
        return status if status in ("finished", "step_limit") else None

    def act(self, action_text: str) -> str:
        if self.episode.status != "running":
            raise ToolError(f"the shopping episode is over ({self.episode.status})")
        observation = step_episode(self.env, self.episode, action_text, self.max_steps)
        return " ".join(observation.split())[:MAX_OBSERVATION_CHARS]

    def resolve(self, query: str) -> str:
        """The clickable of the current page that ``query`` names (exact text first, else ranked)."""
        clickables = self.env.clickables()
        wanted = " ".join(query.lower().split())
        if not clickables or wanted in clickables:
            return wanted
        titles = {asin.upper(): product["Title"] for asin in clickables
                  if (product := self.env.catalogue.by_asin.get(asin.upper()))}
        elements = [Element(text, f"{text} {titles.get(text.upper(), '')}".strip()) for text in clickables]
        return rank(self.ranker, query, WebPage(elements).elements)[0][0].id


def _web_action(session: ShopSession, tool: str) -> Callable[[str, Any], list[str]]:
    def run(args: str, variables: Any) -> list[str]:
        call = parse_web_call(Action(tool=tool, args=args))
        if tool == "TYPE":
            return [session.act(f"search[{call.text}]")]
        target = call.text if tool == "SELECT" else call.query
        return [session.act(f"click[{session.resolve(target)}]")]

    return run


def _shop_action(session: ShopSession, tool: str) -> Callable[[str, Any], list[str]]:
    def run(args: str, variables: Any) -> list[str]:
        try:
            text = to_webshop_action(Action(tool=tool, args=args))
        except WebShopActionError as error:
            raise ToolError(str(error)) from error
        return [session.act(text)]

    return run


class ShopToolbox(Toolbox):
    """CLICK/TYPE/SELECT and Search/Click over one shopping session."""

    def __init__(self, session: ShopSession):
        web = vocabulary("web_agent")
        tools = [Tool(spec.name, spec.description, _web_action(session, spec.name)) for spec in web.actions]
        tools += [Tool("Search", "Search(keywords): search the shop for the keywords", _shop_action(session, "Search")),
                  Tool("Click", "Click(button): click the button or product of the page", _shop_action(session, "Click"))]
        super().__init__("web_agent", tools)
        self.session = session

    @property
    def episode_end(self) -> str | None:
        return self.session.episode_end


def episode_scores(session: ShopSession | None) -> dict[str, Any]:
    episode = session.episode if session is not None else None
    reward = episode.reward if episode is not None and episode.status == "finished" else 0.0
    return {"scores": {"reward": reward, "success": float(reward == 1.0)},
            "webshop": episode.to_record() if episode is not None else None}


def shop_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """WebShop's two figures over ALL episodes (an unfinished one scores 0).

    Records scored with ``--scoring original`` carry ``ended`` (bought or failed, not out of
    rounds); as the released evaluation did, the averages then divide by the ended goals only.
    """
    rewards = [record["scores"]["reward"] for record in records]
    original = any("ended" in record["scores"] for record in records)
    count = sum(record["scores"].get("ended", 0.0) for record in records) if original else len(records)
    metrics = {"average_reward": round(sum(rewards) / count, 6) if count else 0.0,
               "success_rate": round(sum(r == 1.0 for r in rewards) / count, 6) if count else 0.0,
               "num_bought": sum((record.get("webshop") or {}).get("status") == "finished" for record in records)}
    if original:
        metrics["num_ended"] = int(count)
    return metrics


def _unified_module(config: EvalConfig, role: str) -> str:
    """``--planner``/``--grounder``, else ``<model_name_or_path>/lumos_unified_<role>_iterative``."""
    from eval.webshop.original import GROUNDER_MODULE, PLANNER_MODULE

    explicit = config.planner if role == "plan" else config.grounder
    if explicit:
        return explicit
    path = Path(config.model_name_or_path) / (PLANNER_MODULE if role == "plan" else GROUNDER_MODULE)
    if not path.is_dir():
        raise FileNotFoundError(f"module folder {path} does not exist; under --prompt_style original "
                                f"--model_name_or_path must hold {PLANNER_MODULE} and {GROUNDER_MODULE}")
    return str(path)


_GOAL_ID = re.compile(r"webshop_(\d+)")


def make_benchmark(feedback: str = "observation", ranker: Ranker | None = None,
                   feature_ranker: Ranker | None = None, goals: str = "human",
                   scripted: dict[int, list[str]] | None = None) -> Benchmark:
    """The WebShop benchmark for the shared runner; ``--data_dir`` is a folder of WebShop files.

    ``feature_ranker`` scores FeatureRetrieve and Pick under ``--prompt_style original``
    (default: the original's cross-encoder, loaded on first use). ``goals``: WebShop's ``human``
    goals, or its ``synthetic`` ones, which the released evaluation ran on. ``scripted``: the recorded
    actions per goal index that ``--oracle`` runs (:func:`read_actions_file`).
    """
    from eval.webshop.original import FEATURE_RANKER, MAX_NEW_TOKENS, OriginalShopSession, OriginalWebShopRun
    from lumos.agent import completion_feedback, result_feedback
    from lumos.tools.web import CrossEncoderRanker

    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be one of {', '.join(FEEDBACKS)}, got {feedback!r}")
    ranker = ranker or BM25Ranker()
    feature_ranker = feature_ranker or CrossEncoderRanker(FEATURE_RANKER)
    shop: dict[str, Any] = {"original_sessions": {}, "rewards": {}, "scripted": scripted or {}}

    def load(path: Path) -> list[Example]:
        catalogue: Catalogue = load_catalogue(path, goals=goals)
        if not catalogue.goals:
            where = "items_human_ins.json" if goals == "human" else "an 'instruction' in the attributes file"
            raise FileNotFoundError(f"{path}: no {goals} goals ({where} missing)")
        shop["catalogue"], shop["engine"] = catalogue, ProductSearchEngine(catalogue.products)
        return [Example(id=f"webshop_{index}", question=goal["instruction_text"],
                        answer={"goal_index": index, "asin": goal["asin"], "goal_options": goal["goal_options"]})
                for index, goal in enumerate(catalogue.goals)]

    def task_toolbox(example: Example, config: EvalConfig) -> ShopToolbox:
        env = WebShopTextEnv(shop["catalogue"], search_engine=shop["engine"])
        goal_index = int(_GOAL_ID.fullmatch(example.id).group(1))
        return ShopToolbox(ShopSession(env, goal_index, config.max_steps, ranker))

    def original_loop(examples: list[Example], config: EvalConfig, modules: Any) -> list:
        sessions = {example.id: OriginalShopSession(
            WebShopTextEnv(shop["catalogue"], search_engine=shop["engine"], search_anywhere=True),
            int(_GOAL_ID.fullmatch(example.id).group(1)), feature_ranker) for example in examples}
        shop["original_sessions"].update(sessions)
        run = OriginalWebShopRun(modules.generator(_unified_module(config, "plan")),
                                 modules.generator(_unified_module(config, "ground")),
                                 max_new_tokens=config.max_new_tokens or MAX_NEW_TOKENS)
        return run.run([(example.id, example.question, sessions[example.id]) for example in examples])

    def replay_loop(examples: list[Example], config: EvalConfig, modules: Any) -> list:
        """``--oracle ACTIONS.jsonl``: each goal's recorded actions run through its shopping session."""
        from lumos.episode import Episode

        episodes = []
        for example in examples:
            session = modules.example_toolbox(example).session  # (its episode started on the goal)
            shop_episode = play(session.env, session.episode, shop["scripted"].get(session.episode.goal_index, []),
                                config.max_steps)
            episode = Episode(id=example.id, task=example.question, formulation="oracle")
            episode.end(shop_episode.status, shop_episode.error or None)
            episodes.append(episode)
        return episodes

    def score_episode(episode, example: Example, toolbox: ShopToolbox | None) -> dict[str, Any]:
        session = shop["original_sessions"].pop(example.id, None)
        if session is not None:
            reward = session.reward if episode.status == "finished" and session.reward is not None else 0.0
            fields = {"scores": {"reward": reward, "success": float(reward == 1.0)},
                      "webshop": {**session.record(), "status": episode.status}}
        else:
            fields = episode_scores(toolbox.session if toolbox is not None else None)
        shop["rewards"][example.id] = fields["scores"]["reward"]
        return fields

    def score_original(episode, example: Example, formulation: str) -> dict[str, float]:
        """The released evaluation's sum: the reward of a bought goal; a goal still running after the
        last round is left out of the average (``ended`` 0), a failed one counts with 0."""
        reward = shop["rewards"].pop(example.id, 0.0) if episode.status == "finished" else 0.0
        return {"reward": reward, "success": float(reward == 1.0), "ended": float(episode.status != "step_limit")}

    return Benchmark(name="webshop", domain="web_agent", data_file="", load=load, score=lambda prediction, gold: {},
                     task_toolbox=task_toolbox, score_episode=score_episode, summarise=shop_metrics,
                     feedback=result_feedback if feedback == "observation" else completion_feedback,
                     original_loop=original_loop, score_original=score_original, oracle_loop=replay_loop)


def read_actions_file(path: str) -> dict[int, list[str]]:
    """``--oracle`` for WebShop: JSONL lines ``{"goal_index": i, "actions": ["search[...]", "click[...]"]}``."""
    scripted = {}
    try:
        for record in read_records(path):
            if isinstance(record, BadRecord):
                raise ValueError(f"bad actions record: {record}")
            if not isinstance(record.data.get("actions"), list) or "goal_index" not in record.data:
                raise ValueError(f"{record.path}:{record.line_no}: an actions record needs 'goal_index' and an "
                                 f"'actions' list")
            scripted[int(record.data["goal_index"])] = record.data["actions"]
    except (OSError, ValueError) as error:
        raise EvalSetupError(" ".join(str(error).split())) from None
    return scripted


def own_flags() -> argparse.ArgumentParser:
    """WebShop's flags (shown by ``--help``); ``--data_dir`` and ``--max_steps`` replace the runner's defaults."""
    from eval.webshop.original import FEATURE_RANKER

    parser = argparse.ArgumentParser(prog="python -m eval.webshop.run_eval", add_help=False)
    group = parser.add_argument_group("WebShop")
    group.add_argument("--data_dir", default=None,
                       help="folder of WebShop's JSON files (None: the sample catalogue in lumos/webshop/sample)")
    group.add_argument("--max_steps", type=int, default=None,
                       help=f"environment actions per episode (None: {DEFAULT_MAX_STEPS})")
    group.add_argument("--feedback", default=None, choices=FEEDBACKS,
                       help="what the planner is told after a subgoal (None: observation)")
    group.add_argument("--goals", default="human", choices=GOAL_KINDS,
                       help="WebShop's human goals, or its synthetic ones (what the released evaluation ran)")
    group.add_argument("--feature_ranker", default=FEATURE_RANKER,
                       help="cross-encoder for FeatureRetrieve/Pick under --prompt_style original, or 'bm25'")
    return parser


def configure(config: EvalConfig) -> Benchmark:
    """The benchmark for ``config``'s WebShop flags; fills the WebShop defaults into ``config``."""
    from lumos.tools.web import make_ranker

    if config.prompt_style == "original" and (config.extra.get("feedback") is not None or config.max_steps is not None):
        # the released evaluation runs 10 module calls and tells the planner what it tells it
        raise EvalSetupError("--feedback and --max_steps do not apply under --prompt_style original "
                             "(the released evaluation runs 10 rounds and words its own feedback)")
    config.extra["feedback"] = config.extra.get("feedback") or "observation"
    config.max_steps = config.max_steps or DEFAULT_MAX_STEPS
    config.data_dir = config.data_dir or str(SAMPLE_DIR)
    ranker = config.extra.get("feature_ranker")
    # the feature ranker scores FeatureRetrieve/Pick in the released loop only (not --oracle, cot or direct)
    used = config.prompt_style == "original" and ranker != "bm25" and config.oracle is None \
        and config.formulation.startswith("lumos_")
    if used and importlib.util.find_spec("sentence_transformers") is None:
        raise EvalSetupError(f"--feature_ranker {ranker} needs sentence-transformers (pip install "
                             "sentence-transformers), or give --feature_ranker bm25")
    if used:  # a missing or wrong model: one line now, not a tool error in every task
        check_ranker_spec(ranker, "--feature_ranker", "cross_encoder")
    feature_ranker = make_ranker(None if ranker == "bm25" else ranker)
    scripted = None
    if config.oracle is not None:  # recorded actions: read (and checked) before anything is written
        if config.oracle == GOLD_ORACLE:
            raise EvalSetupError(f"--oracle {GOLD_ORACLE}: WebShop's data carries no gold actions; give --oracle "
                                 "ACTIONS.jsonl (lines {\"goal_index\": i, \"actions\": [...]})")
        scripted = read_actions_file(config.oracle)
    benchmark = make_benchmark(config.extra["feedback"], feature_ranker=feature_ranker,
                               goals=config.extra.get("goals", "human"), scripted=scripted)

    def start(config: EvalConfig) -> None:
        """The feature ranker loaded once before the first goal: a model that fails to load ends the run here."""
        load_ranker(feature_ranker, "--feature_ranker", ranker)

    return dataclasses.replace(benchmark, flags=own_flags, start=start if used else None)


# ``python -m eval.webshop.run_eval``: the runner's flags and WebShop's; configure builds the benchmark they ask for
BENCHMARK = dataclasses.replace(make_benchmark(), flags=own_flags, configure=configure)
