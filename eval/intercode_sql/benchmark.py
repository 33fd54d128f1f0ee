"""InterCode-SQL (``ic_spider_dev.json``, 1,034 Spider questions over 20 databases): the unseen
interactive-coding task. Domain ``sql`` (``lumos/tools/sql.py``).

Each example is a question, its database ``db`` and ``db_tables`` (the schema, which the planner
and the grounder read in the task text) and the ``gold`` query. Actions run against a real
MySQL-compatible server: the one at ``--db_url``, or a private MariaDB this run starts on a socket
in a temporary folder, loaded from ``--db_dump`` (default: ``ic_spider_dbs.sql`` beside the
data). The reward is InterCode's, between the result of the episode's last query and the gold
query's (``lumos.tools.sql.intercode_reward``); success = reward 1; both averaged over all tasks.

    python -m eval.intercode_sql.run_eval --data_dir ../shared/data/intercode_sql --oracle gold
    python -m eval.intercode_sql.run_eval --data_dir ../shared/data/intercode_sql \\
        --planner http://127.0.0.1:8000/v1 --grounder http://127.0.0.1:8001/v1 --save_dir results/sql
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from eval.runner import Benchmark, EvalConfig, EvalSetupError, Example, data_path
from lumos.tools.sql import (
    MariaDBServer, SqlSetupError, SqlToolbox, Table, check_connection, intercode_reward, render_rows,
    render_sql_action, require_driver, schema_text, server_binary, sql_toolbox,
)

DATA_FILE, DUMP_FILE = "ic_spider_dev.json", "ic_spider_dbs.sql"


def task_text(question: str, database: str, tables: dict[str, list[str]]) -> str:
    """What the planner and the grounder are given: the question, then the schema."""
    return f"{question.strip()} {schema_text(database, [Table(n, tuple(c)) for n, c in tables.items()])}."


def load(path: Path) -> list[Example]:
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of InterCode-SQL tasks")
    return [Example(id=str(record.get("id", f"sql_{index}")),
                    question=task_text(record["query"], record["db"], record["db_tables"]),
                    answer={"db": record["db"], "gold": record["gold"], "hardness": record.get("hardness")},
                    plan=f"Subgoal 1: Run the query that answers the question.\n"
                         f"Action 1-1: {render_sql_action(record['gold'])}")
            for index, record in enumerate(records)]


def flags() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("InterCode-SQL")
    group.add_argument("--db_url", default=None,
                       help="a running server holding the databases, mysql://user[:password]@host[:port]"
                            "[/?unix_socket=PATH] (give a read-only account; each task in progress holds a connection, up "
                            "to --active_tasks); default: start a private MariaDB")
    group.add_argument("--db_dump", default=None,
                       help=f"SQL dump loaded into the private server (default: {DUMP_FILE} beside the data)")
    return parser


def make_benchmark() -> Benchmark:
    """The InterCode-SQL benchmark; the run's server lives in this closure while the run lasts."""
    run: dict[str, Any] = {}

    def dump_file(config: EvalConfig) -> Path:
        return Path(config.extra.get("db_dump") or data_path(config, BENCHMARK).parent / DUMP_FILE)

    def configure(config: EvalConfig) -> Benchmark:
        """What can be checked before anything is written: the driver, and the dump and a server binary when
        this run is to start its own server."""
        try:
            require_driver()
            if not config.extra.get("db_url"):
                dump = dump_file(config)
                if not dump.is_file():
                    raise EvalSetupError(f"--db_dump {dump}: no such file (InterCode's {DUMP_FILE}); "
                                         "or give --db_url")
                server_binary()
        except SqlSetupError as error:
            raise EvalSetupError(str(error)) from None
        return BENCHMARK

    def start(config: EvalConfig) -> Callable[[], None] | None:
        if config.extra.get("db_url"):
            try:
                check_connection(config.extra["db_url"])
            except SqlSetupError as error:
                raise EvalSetupError(f"--db_url: {error}") from None
            run["url"] = config.extra["db_url"]
            return None  # the --db_url server is not this run's to stop
        server = MariaDBServer(dump_file(config))
        try:
            server.start()
            check_connection(server.url)
        except SqlSetupError as error:
            server.stop()
            raise EvalSetupError(str(error)) from None
        run["url"] = server.url
        return server.stop

    def task_toolbox(example: Example, config: EvalConfig) -> SqlToolbox:
        box = sql_toolbox(run["url"], example.answer["db"])
        # The gold result is taken on the task's own connection before the agent acts: nothing the agent does
        # in its session (USE another database, session variables) can change it; the data cannot change.
        run.setdefault("gold", {})[example.id] = box.session.query(example.answer["gold"])
        return box

    def score_episode(episode, example: Example, toolbox: SqlToolbox | None) -> dict[str, Any]:
        observation = toolbox.observation if toolbox is not None else None
        gold = run.get("gold", {}).pop(example.id, None)
        gold_error = gold if isinstance(gold, str) else None
        reward = intercode_reward(observation, [] if gold_error else gold)  # InterCode: a failing gold gives []
        return {"scores": {"reward": reward, "success": float(reward == 1)},
                "sql": {"observation": render_rows(observation, 20), "gold_error": gold_error,
                        "hardness": example.answer.get("hardness")}}

    def summarise(records: list[dict]) -> dict[str, Any]:
        by_hardness: dict[str, list[float]] = {}
        for record in records:
            hardness = (record.get("sql") or {}).get("hardness") or "unknown"
            by_hardness.setdefault(hardness, []).append(record["scores"].get("success", 0.0))
        return {"success_by_hardness": {name: round(sum(v) / len(v), 6) for name, v in sorted(by_hardness.items())},
                "gold_errors": sum(1 for r in records if (r.get("sql") or {}).get("gold_error"))}

    return Benchmark(name="intercode_sql", domain="sql", data_file=DATA_FILE, load=load,
                     score=lambda prediction, gold: {}, task_toolbox=task_toolbox, score_episode=score_episode,
                     summarise=summarise, flags=flags, start=start, configure=configure)


BENCHMARK = make_benchmark()
