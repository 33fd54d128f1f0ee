"""The one evaluation runner: every benchmark's ``run_eval`` is this loop with its own :class:`Benchmark`.

    python -m eval.gsm.run_eval --data_dir data/eval/gsm --save_dir results/gsm \\
        --model_name_or_path checkpoints --formulation lumos_iterative --eval_batch_size 16
    python -m eval.hotpotqa.run_eval --data_dir data/eval/hotpotqa --corpus corpus.jsonl \\
        --model_name_or_path checkpoints --qa_model http://127.0.0.1:8000/v1 --save_dir results/hotpotqa
    python -m eval.gsm.run_eval --oracle data/train/maths/converted/test_socratic_converted.json \\
        --save_dir results/gsm_oracle        # gold plans: the execution module alone

    python -m eval.svamp.run_eval --model_name_or_path checkpoints --formulation lumos_iterative \\
        --prompt_style original --scoring original   # the released evaluation: its prompts, limits, scoring

Scoring: ``standard`` (default) scores an episode that did not finish 0 on every metric, whatever
its last result; ``original`` is the released evaluation's own rule per benchmark. Under
``--prompt_style original`` the loop follows the benchmark's original protocol (``lumos.protocol``):
the exact prompts, 512 new tokens, the round limits, no BOS (local models tokenise without special
tokens; OpenAI-compatible servers are sent ``add_special_tokens: false``, which vLLM honours).

``--model_name_or_path`` is a folder holding ``lumos_<domain>_{plan,ground}_<iterative|onetime>``
(the released checkpoints' layout); ``--planner``/``--grounder`` override either module with a
path, a URL of an OpenAI-compatible server or ``scripted:<file>``. Predictions (with whole
trajectories) are appended to ``predictions.jsonl`` keyed by example id, so a killed run started
again skips what is done and ends with the same ``metrics.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lumos.cli import DefaultsHelpFormatter
from lumos.domains import domain as lumos_domain
from lumos.jsonl import JsonlStore, StoreLocked, write_run_info

FORMULATIONS = ("lumos_iterative", "lumos_onetime", "cot", "direct")
PROMPT_STYLES = ("tulu", "original")
SCORINGS = ("standard", "original")
GOLD_ORACLE = "gold"  # --oracle gold: execute the gold actions the benchmark data carries


class EvalConfigError(ValueError):
    """A bad flag or flag combination, rejected before anything is loaded."""


class EvalSetupError(ValueError):
    """Inputs that cannot be used (data, models, a save_dir of other settings): one line, nothing written."""


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answer: Any
    plan: str | None = None  # gold subgoal plan (``--oracle``)


@dataclass(frozen=True)
class Benchmark:
    """What differs per benchmark: where its file is, how to read it, how to score, which domain.

    A static benchmark needs ``name``, ``domain`` (a ``lumos.domains`` name), ``data_file``, ``load``
    (path -> examples) and ``score`` ((prediction, gold) -> metrics). An interactive one (a web page, a
    shop, a database) adds ``task_toolbox`` (each example's own environment), ``score_episode`` (scored
    from that environment), ``start`` (run-wide resources such as a server) and ``flags`` (its own
    command-line flags, shown by ``--help``). Everything else is optional; ``run_eval.py`` is then
    ``main(BENCHMARK)``.
    """

    name: str
    domain: str
    data_file: str  # file name inside --data_dir ("" : --data_dir itself, a file or a folder)
    load: Callable[[Path], list[Example]]
    score: Callable[[Any, Any], dict[str, float]]  # (prediction, gold) -> {metric: value}
    extract: Callable[[str], Any] = lambda text: text  # a cot/direct reply -> the predicted answer
    # Environments (web pages, a shop): a toolbox per example whose tools act on that example's
    # environment; the episode is then scored from it: (episode, example, toolbox) -> record fields,
    # "scores" among them. ``summarise`` adds benchmark-wide metrics (e.g. per split) from all records.
    task_toolbox: Callable[[Example, "EvalConfig"], Any] | None = None
    score_episode: Callable[[Any, Example, Any], dict[str, Any]] | None = None
    summarise: Callable[[list[dict]], dict[str, Any]] | None = None
    feedback: Callable[[int, str, str], str] | None = None  # the planner's feedback turn (agent default if None)
    # The released evaluation (``--prompt_style original`` / ``--scoring original``):
    # its loop length in module calls, its protocol (``lumos.protocol``; default: the domain's
    # original protocol with ``original_rounds``), and its scorer: (episode, example, formulation) ->
    # {metric: value}, reading ``episode.original`` for lumos formulations and the raw reply for cot/direct.
    original_rounds: int | None = None
    original_protocol: Callable[["EvalConfig"], Any] | None = None
    score_original: Callable[[Any, Example, str], dict[str, float]] | None = None
    # The prediction the released evaluation wrote for a finished episode, (episode, formulation) -> text or
    # None (none written); what --judge sees under --scoring original (QA benchmarks).
    original_prediction: Callable[[Any, str], str | None] | None = None
    # A released evaluation that is not the shared loop (WebShop's): (examples, config, modules) -> episodes,
    # run instead of the Agent for lumos formulations under ``--prompt_style original``.
    original_loop: Callable[[list[Example], "EvalConfig", Any], list] | None = None
    # A benchmark protocol that is not the shared loop in any prompt style (Mind2Web's step-level one):
    # (examples, config, modules) -> episodes, run instead of the Agent for lumos formulations.
    loop: Callable[[list[Example], "EvalConfig", Any], list] | None = None
    # How ``--oracle`` executes the given actions in a benchmark whose protocol is its own (Mind2Web's gold
    # groundings, each on its step's pool; WebShop's recorded actions, read from the --oracle file by its
    # ``configure``): (examples, config, modules) -> episodes, the examples being the benchmark's data.
    # Without it, ``--oracle`` executes gold plans (the data's, or a file of converted annotations).
    oracle_loop: Callable[[list[Example], "EvalConfig", Any], list] | None = None
    # The benchmark's own flags (a parser made with add_help=False): listed by --help, values in config.extra.
    flags: Callable[[], argparse.ArgumentParser] | None = None
    # Run-wide resources (a database server, a ranker loaded once): started before the first episode and before
    # anything is written, only when episodes are to run; (config) -> what stops them (None: nothing to stop).
    start: Callable[["EvalConfig"], Callable[[], None]] | None = None
    # A benchmark whose parts depend on its own flags (WebShop's feedback, goals, ranker): (config) -> the
    # benchmark to run, after parsing; it may fill defaults in config and raise EvalSetupError for bad combinations.
    configure: Callable[["EvalConfig"], "Benchmark"] | None = None


@dataclass
class EvalConfig:
    """One evaluation run's settings, parsed from the original flag names by :func:`parse_config`.

    Models: ``model_name_or_path`` (a folder of ``lumos_<domain>_{plan,ground}_<formulation>``
    modules) or ``planner``/``grounder`` (path, URL or ``scripted:<file>``), ``qa_model`` for the QA
    tool; data: ``data_dir``, ``max_num_examples``; output: ``save_dir`` (resumed, keyed by the
    settings :data:`SETTINGS` names); the loop: ``formulation``, ``prompt_style``, ``max_steps``,
    ``max_new_tokens``, ``oracle`` (gold actions instead of the modules); scoring: ``scoring``,
    ``judge``. A benchmark's own flags land in ``extra``.
    """

    data_dir: str | None = None
    save_dir: str = "results"
    max_num_examples: int | None = None
    model_name_or_path: str | None = None
    eval_batch_size: int = 16
    active_tasks: int | None = None  # tasks in progress at once in the agent loop; None: 4 x eval_batch_size
    formulation: str = "lumos_iterative"
    planner: str | None = None
    grounder: str | None = None
    qa_model: str | None = None
    corpus: str | None = None
    wikipedia: bool = False
    retriever_model: str | None = None
    prompt_style: str = "tulu"
    oracle: str | None = None
    max_steps: int = 10
    max_new_tokens: int | None = None  # None: the protocol's (256 ours, 512 original)
    judge: str | None = None
    scoring: str = "standard"
    overwrite: bool = False  # start afresh in a save_dir that holds predictions
    retry_failed: bool = False  # run again the episodes that ended in generation_error
    no_progress: bool = False
    load_in_8bit: bool = False  # local models: 8-bit weights (bitsandbytes), the original's flag
    gptq: bool = False  # local models are GPTQ checkpoints, the original's flag
    base_model: str | None = None  # the original SVAMP flag; never read there, ignored here
    kv_cache_tokens: int | None = None  # local models: tokens of key/value cache kept across rounds (0: off)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_config(benchmark: Benchmark, argv: Sequence[str] | None = None,
                 parents: Sequence[argparse.ArgumentParser] = (), prog: str | None = None) -> EvalConfig:
    """The runner's flags (and a benchmark's own, from ``parents``: they land in ``config.extra``)."""
    parser = argparse.ArgumentParser(prog=prog or f"python -m eval.{benchmark.name}.run_eval",
                                     description=f"Evaluate Lumos on {benchmark.name}.", parents=list(parents),
                                     formatter_class=DefaultsHelpFormatter)
    # a benchmark's own definition of a flag (e.g. Mind2Web's --max_num_examples, per split) wins
    taken = {flag for parent in parents for action in parent._actions for flag in action.option_strings}

    def add(*flags: str, **options: Any) -> None:
        if not taken.intersection(flags):
            parser.add_argument(*flags, **options)

    add("--data_dir", default=f"data/eval/{benchmark.name}",
        help=f"folder holding {benchmark.data_file} (or the file itself)" if benchmark.data_file
        else "the benchmark's data (a file or a folder)")
    add("--save_dir", default=f"results/{benchmark.name}",
        help="output folder: predictions.jsonl, metrics.json, run.json, report.html")
    add("--max_num_examples", type=int, default=None, help="evaluate only the first N examples (None: all)")
    add("--overwrite", action="store_true",
        help="start afresh in a --save_dir that holds predictions (of any settings)")
    add("--retry_failed", action="store_true",
        help="run again the episodes that ended in generation_error (a server that was down); "
             "the others are kept")
    add("--no_progress", action="store_true", help="no progress lines on stderr")
    add("--model_name_or_path", default=None,
        help="folder of lumos_<domain>_{plan,ground}_<formulation> modules; for cot/direct the model")
    add("--eval_batch_size", type=int, default=16,
        help="rows a local model decodes together; requests in flight to a server (at least 8)")
    add("--active_tasks", type=int, default=None,
        help="agent loop: tasks in progress at once; a task that ends hands its place to the next and is "
             "written at once (default: 4 x --eval_batch_size)")
    add("--formulation", choices=FORMULATIONS, default="lumos_iterative")
    add("--planner", default=None, help="planning module: path, URL or scripted:<file>")
    add("--grounder", default=None, help="grounding module: path, URL or scripted:<file>")
    add("--qa_model", default=None, help="model behind the QA tool: path, URL or scripted:<file>")
    add("--corpus", default=None, help="JSONL corpus of {title, text} for KnowledgeQuery")
    add("--wikipedia", action="store_true", help="KnowledgeQuery asks the Wikipedia API (online)")
    add("--retriever_model", default=None, help="ParagraphRetrieve's ranker: a sentence-transformers model, or dpr:<DPR reader> "
                             "(the released evaluation's facebook/dpr-reader-multiset-base)")
    add("--prompt_style", choices=PROMPT_STYLES, default="tulu",
        help="'original' reproduces the released evaluation prompts (published numbers)")
    add("--oracle", default=None, help="converted annotations (JSONL, docs/FORMAT.md §1): execute their gold "
                                       f"actions; '{GOLD_ORACLE}': the gold actions the benchmark data carries "
                                       "(InterCode-SQL, Mind2Web); WebShop: a JSONL file of recorded actions "
                                       "per goal_index")
    add("--max_steps", type=int, default=10, help="subgoals per episode")
    add("--max_new_tokens", type=int, default=None,
        help="new tokens per module call (default 256; 512 under --prompt_style original)")
    add("--judge", default=None, help="generator spec of an LLM judge (adds judge_accuracy)")
    add("--scoring", choices=SCORINGS, default="standard",
        help="'original' scores as the released evaluation did (to compare with published numbers)")
    add("--load_in_8bit", action="store_true", help="load local models with 8-bit weights (bitsandbytes)")
    add("--gptq", action="store_true", help="local models are GPTQ checkpoints (needs optimum and gptqmodel)")
    add("--base_model", default=None, help="kept for the original SVAMP command line; ignored: each "
                                           "checkpoint's config.json names its architecture")
    add("--kv_cache_tokens", type=int, default=None,
        help="local models: at most this many tokens' keys and values kept from round to round, so a round "
             "prefills only its new turn (default: as many as 2 GiB hold; 0: off; the outputs are the same)")
    args = vars(parser.parse_args(argv))
    own = {name: args.pop(name) for name in list(args) if name not in EvalConfig.__dataclass_fields__}
    config = EvalConfig(**args)
    config.extra.update(own)
    _validate(config, benchmark, parser)
    if config.base_model is not None:
        print(f"--base_model {config.base_model}: ignored (the original never read it); each checkpoint's "
              f"config.json names its architecture", file=sys.stderr)
    return config


def runs_tools(config: EvalConfig) -> bool:
    """Whether the run executes actions with the domain's tools: under ``--oracle`` (gold actions) or a lumos
    formulation (the modules' actions); cot and direct only generate."""
    return bool(config.oracle) or config.formulation.startswith("lumos_")


def _validate(config: EvalConfig, benchmark: Benchmark, parser: argparse.ArgumentParser) -> None:
    for name in ("eval_batch_size", "active_tasks", "max_steps", "max_new_tokens"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if config.kv_cache_tokens is not None and config.kv_cache_tokens < 0:
        parser.error("--kv_cache_tokens must be at least 0")
    if config.scoring == "original" and benchmark.score_original is None:
        parser.error(f"--scoring original is not available for {benchmark.name}")
    if (config.scoring == "original" and config.formulation.startswith("lumos_") and config.oracle is None
            and (benchmark.original_protocol or lumos_domain(benchmark.domain).original_protocol) is not None
            and config.prompt_style != "original"):
        # The released scorers read the released loop's own bookkeeping, which only that loop keeps.
        parser.error(f"--scoring original with --formulation {config.formulation} needs --prompt_style original "
                     "(the released scoring reads the released loop's final variables)")
    if config.max_num_examples is not None and config.max_num_examples < 1:
        parser.error("--max_num_examples must be at least 1")
    if config.load_in_8bit and config.gptq:
        parser.error("give --load_in_8bit or --gptq, not both")
    if config.overwrite and config.retry_failed:
        parser.error("give --overwrite (start afresh) or --retry_failed (keep what succeeded), not both")
    if config.oracle is None:
        if config.formulation.startswith("lumos_"):
            if config.model_name_or_path is None and (config.planner is None or config.grounder is None):
                parser.error("give --model_name_or_path (a folder of modules) or both --planner and --grounder")
        elif config.model_name_or_path is None and config.planner is None:
            parser.error(f"--formulation {config.formulation} needs --model_name_or_path (the model)")
    if lumos_domain(benchmark.domain).needs_knowledge and runs_tools(config):
        if config.corpus is None and not config.wikipedia:
            parser.error("complex QA tools need a knowledge source: --corpus FILE or --wikipedia")
        if config.corpus is not None and config.wikipedia:
            parser.error("give --corpus or --wikipedia, not both")
        if config.corpus is not None and not Path(config.corpus).is_file():
            parser.error(f"--corpus {config.corpus}: no such file")
        if config.retriever_model and not config.retriever_model.startswith("dpr:") \
                and importlib.util.find_spec("sentence_transformers") is None:
            parser.error(f"--retriever_model {config.retriever_model} needs sentence-transformers "
                         "(pip install sentence-transformers), or give dpr:<DPR reader>")
        if config.qa_model is None:
            parser.error("complex QA tools need --qa_model (the model behind the QA tool: a path, a URL or "
                         "scripted:<file>)")


# --------------------------------------------------------------------------- loading


def data_path(config: EvalConfig, benchmark: Benchmark) -> Path:
    path = Path(config.data_dir)
    return path / benchmark.data_file if path.is_dir() and benchmark.data_file else path


def reads_benchmark_data(config: EvalConfig, benchmark: Benchmark) -> bool:
    """Whether the examples come from the benchmark's data (``--data_dir``): always, except under ``--oracle``
    naming converted annotations, which are then the examples (a benchmark's own oracle reads what ``--oracle``
    names itself, its examples being the benchmark's data)."""
    return config.oracle is None or config.oracle == GOLD_ORACLE or benchmark.oracle_loop is not None


def load_examples(config: EvalConfig, benchmark: Benchmark) -> list[Example]:
    """The examples to evaluate; a missing or unreadable file is an :class:`EvalSetupError` naming it."""
    if reads_benchmark_data(config, benchmark):
        path = data_path(config, benchmark)
        examples = _load_benchmark(benchmark, path)
        if config.oracle == GOLD_ORACLE and benchmark.oracle_loop is None \
                and any(example.plan is None for example in examples):
            raise EvalSetupError(f"--oracle {GOLD_ORACLE}: {benchmark.name}'s data carries no gold actions; "
                                 "give converted annotations (docs/FORMAT.md §1)")
    else:
        if not Path(config.oracle).is_file():
            raise EvalSetupError(f"--oracle {config.oracle}: no such file (converted annotations, docs/FORMAT.md §1)")
        path = Path(config.oracle)
        try:
            examples = load_oracle(path)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise EvalSetupError(one_line(error)) from error
    ids = [example.id for example in examples]
    if len(set(ids)) != len(ids):
        raise EvalSetupError(f"{path}: example ids are not unique: "
                             f"{[i for i, n in Counter(ids).items() if n > 1][:5]}")
    return examples[:config.max_num_examples] if config.max_num_examples else examples


def _load_benchmark(benchmark: Benchmark, path: Path) -> list[Example]:
    if not (path.is_file() or (not benchmark.data_file and path.exists())):
        expected = f"should hold {benchmark.data_file} or be that file" if benchmark.data_file else \
            "should name the benchmark's data"
        raise EvalSetupError(f"{benchmark.name} data {path} does not exist (--data_dir {expected}; "
                             f"scripts/download_data.sh fetches the benchmarks)")
    try:
        examples = benchmark.load(path)
    except KeyError as error:
        raise EvalSetupError(f"{path}: a record has no {error} field, which {benchmark.name} needs: "
                             f"is this another benchmark's file?") from error
    except (OSError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as error:
        text = one_line(error)
        raise EvalSetupError(text if str(path) in text else f"{benchmark.name} data {path}: {text}") from error
    if not examples:
        raise EvalSetupError(f"{benchmark.name} data {path} holds no example")
    return examples


def one_line(error: BaseException | str) -> str:
    """An error's text on one line (a few hundred characters at most)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def read_examples(path: Path, what: str, make: Callable[[dict, int], Example]) -> list[Example]:
    """Examples of a JSON list or JSONL file: ``make(record, n)`` for the ``n``-th record (0-based); a line
    that is not a JSON object is a ``ValueError`` naming ``what`` and the line."""
    from lumos.jsonl import BadRecord, read_records

    examples = []
    for record in read_records(path):
        if isinstance(record, BadRecord):
            raise ValueError(f"{what} {record}")
        examples.append(make(record.data, record.line_no - 1))
    return examples


def load_oracle(path: Path) -> list[Example]:
    """Converted annotations (``task``, ``subgoal_plan``, ``ans``) as examples carrying their gold plan."""

    def make(data: dict, n: int) -> Example:
        if "task" not in data or "subgoal_plan" not in data or "ans" not in data:
            raise ValueError(f"{path}:{n + 1}: an oracle record needs 'task', 'subgoal_plan' and 'ans'")
        return Example(id=str(data.get("id", f"oracle_{n + 1}")), question=data["task"], answer=data["ans"],
                       plan=data["subgoal_plan"])

    return read_examples(path, "oracle annotations:", make)


def module_spec(config: EvalConfig, domain: str, role: str) -> str:
    """``--planner``/``--grounder`` when given, else ``<model_name_or_path>/lumos_<domain>_<role>_<formulation>``."""
    explicit = config.planner if role == "plan" else config.grounder
    if explicit:
        return explicit
    formulation = config.formulation.removeprefix("lumos_")
    path = Path(config.model_name_or_path) / f"lumos_{domain}_{role}_{formulation}"
    if not path.is_dir():
        raise FileNotFoundError(f"module folder {path} does not exist; --model_name_or_path must hold "
                                f"lumos_{domain}_{{plan,ground}}_{formulation} (or pass --planner/--grounder)")
    return str(path)


def check_generator_spec(spec: str, flag: str) -> None:
    """A generator spec that cannot work (a missing folder or scripted file, an uncached hub id offline),
    as an :class:`EvalSetupError`, before anything is loaded or written."""
    scheme, _, rest = spec.partition(":")
    if scheme == "scripted":
        if not Path(rest).is_file():
            raise EvalSetupError(f"{flag} {spec}: no such file (scripted replies, see README 'Scripted models')")
        return
    if scheme == "openai" and not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        raise EvalSetupError(f"{flag} {spec}: set OPENAI_API_KEY for the hosted OpenAI API "
                             "(or OPENAI_BASE_URL for a local OpenAI-compatible server)")
    if scheme in ("openai", "http", "https"):
        return
    from lumos.llm.hf_backend import ModelNotFoundError, check_model_source

    try:
        check_model_source(spec)
    except ModelNotFoundError as error:
        raise EvalSetupError(f"{flag}: {error}") from None


def check_ranker_spec(spec: str, flag: str, kind: str, model: str | None = None) -> None:
    """A ranker model that cannot be used (a missing folder, a folder without a model of ``kind``, an uncached
    hub id offline) as an :class:`EvalSetupError` naming the flag and the value, before anything is loaded or
    written; a hub id to be downloaded is said on stderr. ``model``: the model ``spec`` names when it is not
    ``spec`` itself (``dpr:<model>``); ``kind``: see ``check_ranker_model``."""
    from lumos.tools.engines.retrieval import RankerModelError, check_ranker_model

    try:
        note = check_ranker_model(model or spec, kind)
    except RankerModelError as error:
        raise EvalSetupError(f"{flag} {spec}: {error}") from None
    if note:
        print(f"{flag} {spec}: {note}", file=sys.stderr, flush=True)


def load_ranker(ranker: Any, flag: str, spec: str) -> Any:
    """``ranker`` loaded now (at start-up) when it has a model to load: a model that fails to load or to score
    is an :class:`EvalSetupError` naming the flag and the value, before the first task."""
    from lumos.tools.engines.retrieval import RankerModelError

    if not hasattr(ranker, "load"):
        return ranker  # BM25: nothing to load
    try:
        return ranker.load()
    except RankerModelError as error:
        raise EvalSetupError(f"{flag} {spec}: {error}") from None


def uses_retriever(config: EvalConfig, benchmark: Benchmark) -> bool:
    """Whether the run ranks paragraphs with ``--retriever_model`` (complex QA's tools run)."""
    return bool(config.retriever_model) and lumos_domain(benchmark.domain).needs_knowledge and runs_tools(config)


def check_models(config: EvalConfig, benchmark: Benchmark) -> None:
    """Every model the run will load can be found (no download is started here)."""
    if uses_retriever(config, benchmark):
        from lumos.tools.engines.retrieval import ranker_spec_model

        model, kind = ranker_spec_model(config.retriever_model)
        check_ranker_spec(config.retriever_model, "--retriever_model", kind, model=model)
    if config.oracle is None:
        if config.formulation.startswith("lumos_"):
            folder = config.model_name_or_path
            if folder is not None and not Path(folder).is_dir() and not (config.planner and config.grounder):
                raise EvalSetupError(f"--model_name_or_path {folder}: no such folder (it should hold "
                                     f"lumos_<domain>_{{plan,ground}}_<formulation> modules)")
            for role, flag in (("plan", "--planner"), ("ground", "--grounder")):
                explicit = config.planner if role == "plan" else config.grounder
                if explicit:
                    check_generator_spec(explicit, flag)
                elif not (config.prompt_style == "original" and benchmark.original_loop is not None):
                    try:  # (a released loop of its own names its own modules)
                        spec = module_spec(config, benchmark.domain, role)
                    except FileNotFoundError as error:
                        raise EvalSetupError(str(error)) from None
                    check_generator_spec(spec, "--model_name_or_path")
        else:
            check_generator_spec(config.planner or config.model_name_or_path,
                                 "--planner" if config.planner else "--model_name_or_path")
    if config.qa_model:
        check_generator_spec(config.qa_model, "--qa_model")
    if config.judge:
        check_generator_spec(config.judge, "--judge")


def load_generator(spec: str, config: EvalConfig):
    """A generator by spec; a local model gets the batch size and the tokenisation its prompt style needs."""
    from lumos.llm import get_generator

    scheme = spec.partition(":")[0]
    bos = config.prompt_style == "tulu"  # the released evaluation tokenised its prompts without BOS
    quantized = {name: True for name in ("load_in_8bit", "gptq") if getattr(config, name)}
    if quantized and scheme in ("scripted", "openai", "http", "https"):
        print(f"--{next(iter(quantized))} applies to local models: {spec} is loaded as its server or script "
              f"decides", file=sys.stderr)
    if scheme == "scripted":
        return get_generator(spec)
    if scheme == "openai":
        return get_generator(spec, progress=False)
    if scheme in ("http", "https"):  # an OpenAI-compatible server (vLLM honours add_special_tokens)
        # a batch's requests all in flight at once: the server batches them (continuous batching)
        return get_generator(spec, progress=False, concurrency=max(8, config.eval_batch_size),
                             **({} if bos else {"add_special_tokens": False}))
    from lumos.llm.hf_backend import QuantizedLoadError

    try:
        return get_generator(spec, batch_size=config.eval_batch_size, add_special_tokens=bos,
                             kv_cache_tokens=config.kv_cache_tokens, **quantized)
    except QuantizedLoadError as error:
        raise EvalSetupError(str(error)) from None


# --------------------------------------------------------------------------- running


class _Modules:
    """Everything loaded once per run: generators (shared when specs coincide) and the toolbox."""

    def __init__(self, config: EvalConfig, benchmark: Benchmark):
        self.config = config
        self.benchmark = benchmark
        self._generators: dict[str, Any] = {}
        self.toolbox = None
        self.task_toolboxes: dict[str, Any] = {}  # example id -> its environment's toolbox, until scored
        self._protocol = None
        self.ranker = None  # ParagraphRetrieve's --retriever_model, once loaded by load_rankers

    def load_rankers(self) -> None:
        """ParagraphRetrieve's ranker (``--retriever_model``) loaded once, at start-up (see :func:`load_ranker`)."""
        if self.ranker is None and uses_retriever(self.config, self.benchmark):
            from lumos.tools.engines.retrieval import make_ranker

            self.ranker = load_ranker(make_ranker(self.config.retriever_model), "--retriever_model",
                                      self.config.retriever_model)

    def protocol(self):
        """One protocol for the whole run (the original's bookkeeping can reach across examples)."""
        if self._protocol is None:
            self._protocol = make_protocol(self.config, self.benchmark)
        return self._protocol

    def generator(self, spec: str):
        if spec not in self._generators:
            self._generators[spec] = load_generator(spec, self.config)
        return self._generators[spec]

    def make_toolbox(self):
        if self.toolbox is None:
            spec = lumos_domain(self.benchmark.domain)
            options = {}
            if spec.needs_knowledge:
                qa = self.generator(self.config.qa_model) if self.config.qa_model else None
                options = {"corpus": self.config.corpus, "qa_generator": qa, "wikipedia": self.config.wikipedia,
                           **({"ranker": self.ranker} if self.ranker is not None
                              else {"retriever_model": self.config.retriever_model})}
            if self.config.prompt_style == "original":
                options.update(spec.original_toolbox_options)  # the released evaluation's result forms
            self.toolbox = spec.make_toolbox(**options)
        return self.toolbox

    def example_toolbox(self, example: Example):
        """The toolbox an example runs with: its own environment's where the benchmark has one."""
        if self.benchmark.task_toolbox is None:
            return self.make_toolbox()
        if example.id not in self.task_toolboxes:
            self.task_toolboxes[example.id] = self.benchmark.task_toolbox(example, self.config)
        return self.task_toolboxes[example.id]

    def release(self, example_id: str):
        """Hand back (and forget) an example's own toolbox once it is scored; None when it has none."""
        box = self.task_toolboxes.pop(example_id, None)
        if box is not None:
            box.close()
        return box

    def close(self) -> None:
        for example_id in list(self.task_toolboxes):
            self.release(example_id)
        if self.toolbox is not None:
            self.toolbox.close()
        for generator in self._generators.values():
            generator.close()


def make_protocol(config: EvalConfig, benchmark: Benchmark):
    """The loop's protocol: ours, or under ``--prompt_style original`` the benchmark's original one."""
    from lumos.protocol import protocol_for

    if config.prompt_style == "original" and benchmark.original_protocol is not None:
        return benchmark.original_protocol(config)
    return protocol_for(config.prompt_style, rounds=benchmark.original_rounds, domain=benchmark.domain,
                        formulation=config.formulation.removeprefix("lumos_"))


def agent_loop(config: EvalConfig, benchmark: Benchmark) -> bool:
    """Whether the examples run through the plan -> ground -> execute loop (a lumos formulation, no oracle,
    no loop of the benchmark's own)."""
    return (config.formulation.startswith("lumos_") and config.oracle is None and benchmark.loop is None
            and not (config.prompt_style == "original" and benchmark.original_loop is not None))


def run_examples(examples: list[Example], config: EvalConfig, benchmark: Benchmark, modules: _Modules,
                 on_done: Callable[[Example, Any], None]) -> None:
    """Run ``examples``, handing each ``(example, episode)`` to ``on_done`` as soon as the episode has ended.

    The lumos agent loop gets every example at once with at most ``--active_tasks`` in progress: a task
    that ends is written at once and its place taken by the next, so every module call stays full (a
    local model's continuous batching refills its ``--eval_batch_size`` rows from the waiting prompts)
    instead of each batch running as long as its slowest task. Everything else, the released protocol
    (its tasks depend on each other) included, runs batch by batch.
    """
    if not examples:
        return  # nothing left to run: no model is loaded
    if agent_loop(config, benchmark) and modules.protocol().tasks_independent:
        run_agent(examples, config, benchmark, modules, active=config.active_tasks or 4 * config.eval_batch_size,
                  on_done=on_done)
        return
    for start in range(0, len(examples), config.eval_batch_size):
        batch = examples[start:start + config.eval_batch_size]
        for example, episode in zip(batch, run_batch(batch, config, benchmark, modules)):
            on_done(example, episode)


def run_agent(examples: list[Example], config: EvalConfig, benchmark: Benchmark, modules: _Modules, *,
              active: int | None = None, on_done: Callable[[Example, Any], None] | None = None) -> list:
    """The plan -> ground -> execute loop over ``examples`` (their own toolboxes where the benchmark has them);
    see ``lumos.agent.Agent.run`` for ``active`` and ``on_done``."""
    from lumos.agent import Agent

    domain = benchmark.domain
    by_id = {str(example.id): example for example in examples}
    own_toolboxes = benchmark.task_toolbox is not None
    agent = Agent(modules.generator(module_spec(config, domain, "plan")),
                  modules.generator(module_spec(config, domain, "ground")),
                  None if own_toolboxes else modules.make_toolbox(),
                  domain=domain, formulation=config.formulation.removeprefix("lumos_"),
                  max_steps=config.max_steps, protocol=modules.protocol(),
                  max_new_tokens=config.max_new_tokens, feedback=benchmark.feedback,
                  task_toolbox=(lambda task_id, task: modules.example_toolbox(by_id[task_id]))
                  if own_toolboxes else None)
    return agent.run([(example.id, example.question) for example in examples], active=active,
                     on_done=None if on_done is None else lambda episode: on_done(by_id[episode.id], episode))


def run_batch(examples: list[Example], config: EvalConfig, benchmark: Benchmark, modules: _Modules) -> list:
    """Episodes for one batch, in order."""
    from lumos.agent import execute_plan
    from lumos.episode import Episode, Step
    from lumos.format import FormatError, parse_plan

    if config.oracle is not None and benchmark.oracle_loop is not None:
        return benchmark.oracle_loop(examples, config, modules)
    if config.oracle is not None:
        episodes = []
        for example in examples:
            try:
                plan = parse_plan(example.plan or "")
            except FormatError as error:
                episode = Episode(id=example.id, task=example.question, formulation="oracle")
                episode.end("parse_error", f"gold plan: {error}")
                episodes.append(episode)
                continue
            episodes.append(execute_plan(example.id, example.question, plan, modules.example_toolbox(example)))
        return episodes
    if agent_loop(config, benchmark):
        return run_agent(examples, config, benchmark, modules)
    if config.formulation.startswith("lumos_"):
        if config.prompt_style == "original" and benchmark.original_loop is not None:
            return benchmark.original_loop(examples, config, modules)
        return benchmark.loop(examples, config, modules)
    # cot / direct: the user turn is the bare question (docs/FORMAT.md §5)
    from lumos import prompts
    from lumos.agent import generator_eos
    from lumos.llm import GenerationError

    generator = modules.generator(config.planner or config.model_name_or_path)
    protocol = modules.protocol()
    texts = [protocol.render([{"role": prompts.USER, "content": example.question}], generator_eos(generator))
             for example in examples]
    started = time.perf_counter()
    # the released evaluation cut every reply at the first newline, cot included
    stop = ["\n"] if config.formulation == "direct" or protocol.name == "original" else []
    replies = generator.try_generate(texts, stop=stop, max_new_tokens=config.max_new_tokens or protocol.max_new_tokens)
    seconds = time.perf_counter() - started
    episodes = []
    for example, reply in zip(examples, replies):
        episode = Episode(id=example.id, task=example.question, formulation=config.formulation, seconds=seconds)
        if isinstance(reply, GenerationError):
            episode.end("generation_error", str(reply))
        else:
            episode.steps.append(Step(index=1, plan_reply=reply, plan_seconds=seconds))
            episode.prediction = str(benchmark.extract(reply.strip()))
            episode.end("finished")
        episodes.append(episode)
    return episodes


# What a save_dir's predictions depend on: resuming under other values would mix results.
# (Not: eval_batch_size, active_tasks, max_num_examples, judge, progress; the judge is asked again at every run.)
SETTINGS = ("benchmark", "formulation", "prompt_style", "scoring", "model_name_or_path", "planner", "grounder",
            "qa_model", "corpus", "wikipedia", "retriever_model", "max_steps", "max_new_tokens", "data", "oracle")
_NOT_SETTINGS_EXTRA = ("max_num_examples",)
_HASH_LIMIT = 256 * 2 ** 20  # bytes hashed per file; beyond, size and the first/last MiB


def fingerprint(path: str | Path) -> str:
    """Content identity of a data file or folder (sha256 of the bytes, names and sizes for a folder)."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if path.is_dir() else ''}:{size}\n".encode())
        if path.is_dir():
            continue  # a folder of splits: names and sizes
        with open(file, "rb") as handle:
            if size <= _HASH_LIMIT:
                for block in iter(lambda: handle.read(2 ** 20), b""):
                    digest.update(block)
            else:
                digest.update(handle.read(2 ** 20))
                handle.seek(size - 2 ** 20)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def _model_setting(spec: str | None) -> str | None:
    """A model spec with local paths made absolute (the same run started from another folder matches)."""
    if not spec:
        return spec
    scheme, _, rest = spec.partition(":")
    if scheme == "scripted":
        return f"scripted:{Path(rest).resolve()}"
    if scheme in ("openai", "http", "https") or not Path(spec).exists():
        return spec
    return str(Path(spec).resolve())


def run_settings(config: EvalConfig, benchmark: Benchmark) -> dict[str, Any]:
    """The settings a save_dir's predictions were made with (see :data:`SETTINGS`)."""
    values = {name: getattr(config, name) for name in SETTINGS if hasattr(config, name)}
    values["benchmark"] = benchmark.name
    for name in ("model_name_or_path", "planner", "grounder", "qa_model"):
        values[name] = _model_setting(values[name])
    values["corpus"] = str(Path(config.corpus).resolve()) if config.corpus else None
    gold = config.oracle == GOLD_ORACLE
    values["data"] = fingerprint(data_path(config, benchmark)) if reads_benchmark_data(config, benchmark) else None
    values["oracle"] = config.oracle if gold else fingerprint(config.oracle) if config.oracle else None
    for name, value in sorted(config.extra.items()):
        if name not in _NOT_SETTINGS_EXTRA:
            values[f"extra.{name}"] = value
    return json.loads(json.dumps(values, default=str))  # as run.json stores them


def settings_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name was X (now Y)`` for each setting that differs."""
    names = [name for name in current if name in saved] + [name for name in saved if name not in current]
    return [f"{name} was {saved.get(name)!r} (now {current.get(name)!r})" for name in names
            if saved.get(name) != current.get(name)]


def check_save_dir(config: EvalConfig, settings: dict[str, Any]) -> None:
    """Refuse to resume into a save_dir whose predictions were made with other settings."""
    save_dir = Path(config.save_dir)
    if save_dir.exists() and not save_dir.is_dir():
        raise EvalSetupError(f"--save_dir {save_dir} is a file, not a folder")
    predictions = save_dir / "predictions.jsonl"
    if config.overwrite or not predictions.is_file() or predictions.stat().st_size == 0:
        return
    advice = "give --overwrite to start afresh there, or another --save_dir"
    try:
        saved = json.loads((save_dir / "run.json").read_text(encoding="utf-8"))["config"]["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EvalSetupError(f"{save_dir} holds predictions but no run.json recording their settings, so they "
                             f"cannot be resumed safely: {advice}") from None
    differences = settings_differences(saved, settings)
    if differences:
        raise EvalSetupError(f"{save_dir} holds predictions made with other settings: {'; '.join(differences)}; "
                             f"{advice}")


def prepare(config: EvalConfig, benchmark: Benchmark) -> tuple[list[Example], dict[str, Any]]:
    """Everything checked before anything is written: data, models, the save_dir's settings."""
    examples = load_examples(config, benchmark)
    check_models(config, benchmark)
    settings = run_settings(config, benchmark)
    check_save_dir(config, settings)
    return examples, settings


def to_retry(record: dict) -> bool:
    """Whether ``--retry_failed`` runs a saved episode again: it ended in generation_error (a server that was down)."""
    return record.get("status") == "generation_error"


def has_episodes_to_run(config: EvalConfig, examples: list[Example]) -> bool:
    """Whether the save_dir's predictions (read, not locked or repaired) leave an example to run."""
    from lumos.jsonl import SourceRecord, read_records

    predictions = Path(config.save_dir) / "predictions.jsonl"
    if config.overwrite or not predictions.is_file():
        return True
    done = set()
    try:
        for record in read_records(predictions):
            if isinstance(record, SourceRecord) and "id" in record.data and not (
                    config.retry_failed and to_retry(record.data)):
                done.add(str(record.data["id"]))
    except OSError:
        return True
    return any(str(example.id) not in done for example in examples)


def start_up(config: EvalConfig, benchmark: Benchmark, modules: "_Modules", resources: contextlib.ExitStack) -> None:
    """Before the first episode (and before anything is written, when episodes are to run): the rankers loaded
    once, so that a model that cannot load or score ends the run here in one line, not each task with a tool
    error; then the benchmark's run-wide resources started, their stop registered in ``resources``."""
    modules.load_rankers()
    if benchmark.start is not None:
        stop = benchmark.start(config)
        if stop is not None:
            resources.callback(stop)


def evaluate(config: EvalConfig, benchmark: Benchmark) -> dict[str, Any]:
    """Run (or resume) the evaluation; returns and writes the metrics.

    Raises :class:`EvalSetupError` (nothing written) for unusable data or models, and for a save_dir
    whose predictions were made with other settings (``--overwrite`` starts afresh there).
    """
    examples, settings = prepare(config, benchmark)
    save_dir = Path(config.save_dir)
    modules = _Modules(config, benchmark)
    resources = contextlib.ExitStack()  # stops the benchmark's run-wide resources, however the run ends
    begun = has_episodes_to_run(config, examples)
    if begun:  # before anything is written: a ranker that fails to load leaves no folder behind
        start_up(config, benchmark, modules, resources)
    started = time.perf_counter()
    with resources, JsonlStore(save_dir / "predictions.jsonl") as store:  # (the store makes the folder)
        # Both rewrites happen under the store's lock, so no other writer can slip in between.
        if config.overwrite:
            store.clear()
            (save_dir / "metrics.json").unlink(missing_ok=True)
        elif config.retry_failed:
            dropped = store.remove(to_retry)
            print(f"[{benchmark.name}] --retry_failed: {dropped} episode(s) that ended in generation_error run again",
                  file=sys.stderr, flush=True)
        write_run_info(save_dir, {"benchmark": benchmark.name, **asdict(config), "settings": settings})
        todo = [example for example in examples if example.id not in store]
        if todo and not begun:  # (another run changed the save_dir since it was read)
            start_up(config, benchmark, modules, resources)
        written = 0

        def write(example: Example, episode) -> None:
            nonlocal written
            record = episode.to_record()
            record["answer"] = example.answer
            if benchmark.score_episode is not None:
                record.update(benchmark.score_episode(episode, example, modules.task_toolboxes.get(example.id)))
                modules.release(example.id)
            else:
                record["scores"] = benchmark.score(episode.prediction, example.answer)
            if config.scoring == "original":
                # the released evaluation's rule, its own treatment of unfinished tasks included
                record["scores"] = benchmark.score_original(episode, example, config.formulation)
                if benchmark.original_prediction is not None:
                    record["original_prediction"] = (benchmark.original_prediction(episode, config.formulation)
                                                     if episode.status == "finished" else None)
            else:
                record["scores"] = honest_scores(record["scores"], episode.status)
            store.append(record)
            written += 1
            if not config.no_progress and (written % config.eval_batch_size == 0 or written == len(todo)):
                print(f"[{benchmark.name}] {len(examples) - len(todo) + written}/{len(examples)} done",
                      file=sys.stderr, flush=True)

        try:
            run_examples(todo, config, benchmark, modules, write)
        finally:
            modules.close()
        wanted = {example.id for example in examples}
        records = [record for record in store.records() if record["id"] in wanted]
    metrics = summarise(records, benchmark, config)
    if benchmark.summarise is not None:
        metrics.update(benchmark.summarise(records))
    metrics["seconds_this_run"] = round(time.perf_counter() - started, 3)
    if config.judge:
        metrics.update(judge_metrics(records, config))
    (save_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(summary_table(metrics))
    from lumos.report import write_report

    report = write_report(save_dir, only=wanted)
    for name, path in (("predictions", save_dir / "predictions.jsonl"), ("metrics", save_dir / "metrics.json"),
                       ("report", report)):
        print(f"{name + ':':<12} {path}")
    return metrics


def honest_scores(scores: dict[str, float], status: str) -> dict[str, float]:
    """An episode that did not finish scores 0 on every metric, whatever its last tool result was.

    Its partial prediction stays in the record for reading; only the scores are zeroed.
    """
    if status == "finished":
        return scores
    return {name: 0.0 for name in scores}


def summarise(records: list[dict], benchmark: Benchmark, config: EvalConfig) -> dict[str, Any]:
    """Mean of every score over all examples (unfinished episodes scored 0) and the exit status counts."""
    from lumos.metrics import mean

    names = sorted({name for record in records for name in record["scores"]})
    formulation = "oracle" if config.oracle else config.formulation
    return {
        "benchmark": benchmark.name,
        "formulation": formulation,
        "prompt_style": config.prompt_style,
        "scoring": config.scoring,
        "num_examples": len(records),
        **{name: round(mean([record["scores"].get(name, 0.0) for record in records]), 6) for name in names},
        "status": dict(sorted(Counter(record["status"] for record in records).items())),
    }


def judge_metrics(records: list[dict], config: EvalConfig) -> dict[str, Any]:
    from lumos.metrics import judge_accuracy

    finished = [r for r in records if r["status"] == "finished"]  # the rest score 0 unjudged
    style, field = "standard", "prediction"
    if config.scoring == "original" and any("original_prediction" in r for r in records):
        # the released judge prompt over the predictions the original wrote (the rest count 0)
        style, field = "original", "original_prediction"
        finished = [r for r in finished if r.get(field) is not None]
    judge = load_generator(config.judge, config)
    try:
        scores = judge_accuracy(judge, [r["task"] for r in finished], [r[field] or "" for r in finished],
                                [r["answer"] for r in finished], style=style)
    finally:
        judge.close()
    judged = [s for s in scores if s is not None]
    return {"judge_accuracy": round(sum(judged) / len(records), 6) if records else 0.0,
            "judge_unclear": len(scores) - len(judged)}


def summary_table(metrics: dict[str, Any]) -> str:
    rows = [(key, value) for key, value in metrics.items() if key != "status"]
    rows += [(f"status.{key}", value) for key, value in metrics["status"].items()]
    width = max(len(key) for key, _ in rows)
    lines = ["-" * (width + 16)] + [f"{key:<{width}}  {value}" for key, value in rows] + ["-" * (width + 16)]
    return "\n".join(lines)


def run(benchmark: Benchmark, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the command line (the runner's flags and the benchmark's own), configure, evaluate; the metrics."""
    config = parse_config(benchmark, argv, parents=[benchmark.flags()] if benchmark.flags else ())
    if benchmark.configure is not None:
        benchmark = benchmark.configure(config)
    return evaluate(config, benchmark)


def main(benchmark: Benchmark, argv: Sequence[str] | None = None) -> int:
    try:
        run(benchmark, argv)
    except (EvalSetupError, StoreLocked) as error:  # StoreLocked: another run writes this save_dir now
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
