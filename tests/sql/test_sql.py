"""The SQL domain (InterCode-SQL): its action grammar, InterCode's reward, a read-only session on a
real MariaDB server, and the benchmark end to end through the shared runner with scripted planning
and grounding models served on 127.0.0.1."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lumos.domains import domain
from lumos.format import FormatError
from lumos.tools.sql import (
    MariaDBServer, SqlSetupError, connection_options, intercode_reward, kendall_tau_b, parse_sql_actions, sql_toolbox,
)

TASKS = [  # as tests/sql/conftest.py writes them (questions only)
    "What are the names of the products made by Oak & Co, cheapest first?",
    "How many students are 22 years old?",
    "Which maker has a semicolon in its name?",
]

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- grammar and registry


def test_the_sql_domain_is_registered_without_training_data():
    sql = domain("sql")
    assert sql.vocabulary.tool_names == ("SQL",)
    assert not sql.training
    from lumos import prompts

    instruction = prompts.ground_instruction("sql", "t")
    assert "The available action list is 'SQL'.\nSQL(query): Run the SQL query" in instruction


def test_actions_split_only_where_the_next_query_starts():
    reply = "R1 = SQL(SELECT Maker FROM products WHERE Maker LIKE '%; %' AND Name = ')'); R2 = SQL(SELECT 1)"
    actions = parse_sql_actions(reply)
    assert [(a.outputs, a.tool, a.args) for a in actions] == [
        (("R1",), "SQL", "SELECT Maker FROM products WHERE Maker LIKE '%; %' AND Name = ')'"),
        (("R2",), "SQL", "SELECT 1")]
    for bad in ("", "SELECT 1", "R1 = SQL SELECT 1", "R1 = Calculator(1 + 2)"):
        with pytest.raises(FormatError):
            parse_sql_actions(bad)


def test_a_toolbox_connects_to_nothing_until_asked():
    box = sql_toolbox("mysql://reader@localhost/?unix_socket=/nonexistent.sock", "shop")
    assert box.domain == "sql" and box.observation is None
    box.close()
    assert connection_options("mysql://u:p%40ss@db.example:3307/") == {
        "user": "u", "password": "p@ss", "host": "db.example", "port": 3307}
    with pytest.raises(SqlSetupError, match="expected mysql://"):
        connection_options("postgres://u@h/")


# --------------------------------------------------------------------------- InterCode's reward


@pytest.mark.parametrize("agent, gold, reward", [
    ([(1,), (2,)], [(1,), (2,)], 1.0),
    ([], [], 1.0),  # both empty
    ([(2,), (1,)], [(1,), (2,)], -1.0),  # the same rows in the opposite order: tau = -1
    ([(1,), (2,)], [(1,), (3,)], 1 / 3),  # one shared row: tau undefined, IoU alone
    ([(1,), (1,), (2,)], [(1,), (2,)], round(2 / 3, 2)),  # multisets: the duplicate counts in the union
    ([(3,), (1,), (2,)], [(1,), (2,), (3,), (4,)], round(3 / 4 * (-1 / 3), 2)),  # 3, 1, 2 vs 1, 2, 3: tau -1/3
    ("Error executing query: no such table", [(1,)], 0.0),
    (None, [], 0.0),  # no result set is not a row list
    ([(1,)], [], 0.0),
])
def test_reward_is_intercodes(agent, gold, reward):
    assert intercode_reward(agent, gold) == pytest.approx(reward)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:One or more sample arguments is too small")
def test_kendall_tau_b_equals_scipys_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(0, 9)
        x = [str(rng.randint(0, 4)) for _ in range(n)]
        y = [str(rng.randint(0, 4)) for _ in range(n)]
        ours, theirs = kendall_tau_b(x, y), stats.kendalltau(x, y, nan_policy="omit").statistic
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs)


# --------------------------------------------------------------------------- a real server


def test_bad_sql_is_an_observation_and_nothing_changes_the_data(mariadb):
    box = sql_toolbox(mariadb.url, "shop")
    assert box.tools["SQL"]("SELECT count(*) FROM products", {}) == ["[(4,)]"]
    assert box.tools["SQL"]("SELEC name", {})[0].startswith("Error executing query: You have an error in your SQL")
    for statement in ("DROP TABLE products", "UPDATE products SET Price = 0", "DELETE FROM products",
                      "INSERT INTO products VALUES (9, 'x', 1, 'y')", "CREATE TABLE z (a int)", "DROP DATABASE shop",
                      "TRUNCATE TABLE products", "GRANT ALL ON *.* TO 'lumos_reader'@'localhost'"):
        result = box.tools["SQL"](statement, {})[0]
        assert result.startswith("Error executing query: "), (statement, result)
    box.close()
    other = sql_toolbox(mariadb.url, "shop")
    assert other.tools["SQL"]("SELECT Name, Price FROM products ORDER BY Product_ID", {}) == \
        ["[('Lamp', Decimal('19.50')), ('Desk', Decimal('120.00')), ('Chair', Decimal('45.00')), "
         "('Rug', Decimal('60.00'))]"]
    other.close()


def test_the_private_server_takes_a_connection_per_task_in_progress(mariadb):
    """run_eval keeps --active_tasks tasks in progress (64 by default, 200 for --eval_batch_size 50), each
    with its own connection: more than MariaDB's default limit of 151 must be served."""
    boxes = [sql_toolbox(mariadb.url, "shop") for _ in range(200)]
    try:
        assert all(box.tools["SQL"]("SELECT count(*) FROM products", {}) == ["[(4,)]"] for box in boxes)
    finally:
        for box in boxes:
            box.close()


def test_the_server_refuses_a_missing_binary_in_one_line(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("lumos.tools.sql.Path.exists", lambda self: False)
    with pytest.raises(SqlSetupError, match="no MariaDB server here"):
        MariaDBServer().start()


# --------------------------------------------------------------------------- the benchmark end to end


PLANNER_PROMPTS: list[str] = []


def _planner(prompt: str) -> str:
    PLANNER_PROMPTS.append(prompt)
    done = prompt.count("Should we stop planning?")
    return "Subgoal 1: Query the database for the answer." if done == 0 else "Yes, I will stop planning."


_ANSWERS = {  # the grounder's query per question: right, wrong order + a DROP first, right
    TASKS[0]: "R1 = SQL(DROP TABLE products); R2 = SQL(SELECT Name FROM products WHERE Maker = 'Oak & Co' "
                       "ORDER BY Price DESC)",
    TASKS[1]: "R1 = SQL(SELECT count(*) FROM student WHERE age = 22)",
    TASKS[2]: "R1 = SQL(SELECT Maker FROM products WHERE Maker LIKE '%;%')",
}


def _grounder(prompt: str) -> str:
    return next(answer for question, answer in _ANSWERS.items() if question in prompt)


def _run(args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "eval.intercode_sql.run_eval", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_scripted_models_served_on_loopback(mariadb, sql_data, serve, tmp_path):
    _, planner = serve(_planner)
    _, grounder = serve(_grounder)
    save = tmp_path / "out"
    run = _run(["--data_dir", str(sql_data), "--planner", planner, "--grounder", grounder, "--save_dir", str(save),
                "--no_progress"])
    assert run.returncode == 0, run.stdout + run.stderr
    records = {r["id"]: r for r in map(json.loads, (save / "predictions.jsonl").read_text().splitlines())}
    assert [records[f"sql_{k}"]["status"] for k in range(3)] == ["finished"] * 3
    # the DROP was an observation; the next query still saw the table, in the wrong order: tau -1
    first = records["sql_0"]["steps"][0]["calls"]
    assert first[0]["result"].startswith("Error executing query: ") and first[1]["result"] == "[('Desk',), ('Chair',)]"
    assert records["sql_0"]["scores"] == {"reward": -1.0, "success": 0.0}
    assert records["sql_1"]["scores"] == {"reward": 1.0, "success": 1.0}
    assert records["sql_2"]["scores"] == {"reward": 1.0, "success": 1.0}
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["reward"] == pytest.approx(1 / 3) and metrics["success"] == pytest.approx(2 / 3)
    # the planner read the task and the schema; it was told the rows
    assert "Database shop: products(Product_ID, Name, Price, Maker)" in PLANNER_PROMPTS[0]
    assert any("The executed result for Subgoal 1 is [(2,)]. Should we stop planning?" in p for p in PLANNER_PROMPTS)


def test_gold_oracle_scores_one_through_the_script(sql_data, mariadb, tmp_path):
    save = tmp_path / "oracle"
    run = subprocess.run([str(ROOT / "scripts/eval/intercode_sql.sh"), "--data_dir", str(sql_data), "--oracle", "gold",
                          "--save_dir", str(save), "--max_num_examples", "3", "--no_progress"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["num_examples"] == 3 and metrics["reward"] == 1.0 and metrics["success"] == 1.0


def test_a_missing_dump_is_one_line(sql_tasks, tmp_path):
    (tmp_path / "ic_spider_dev.json").write_text(json.dumps(sql_tasks), encoding="utf-8")
    run = _run(["--data_dir", str(tmp_path), "--oracle", "gold", "--save_dir", str(tmp_path / "o"), "--no_progress"])
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: --db_dump ")
    assert not (tmp_path / "o").exists()  # checked before anything is written


@pytest.mark.slow
def test_gold_oracle_on_intercode_sql_scores_one_wherever_the_gold_runs(shared_data, require_mariadb, tmp_path):
    data = shared_data / "intercode_sql"
    run = _run(["--data_dir", str(data), "--oracle", "gold", "--save_dir", str(tmp_path / "o"), "--no_progress"])
    assert run.returncode == 0, run.stdout + run.stderr
    records = [json.loads(line) for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 1034
    runs = [r for r in records if not r["sql"]["gold_error"]]
    assert [(r["id"], r["scores"]["reward"]) for r in runs if r["scores"]["reward"] != 1.0] == []
    assert len(runs) >= 1020  # a few Spider gold queries are SQLite-only and fail on MariaDB


def test_an_unreachable_db_url_is_one_line_before_any_task(sql_data, tmp_path):
    run = _run(["--data_dir", str(sql_data), "--oracle", "gold", "--save_dir", str(tmp_path / "o"), "--no_progress",
                "--db_url", f"mysql://nobody@localhost/?unix_socket={tmp_path / 'none.sock'}"])
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: --db_url: cannot connect to the database")
    assert not (tmp_path / "o" / "predictions.jsonl").exists() or not (tmp_path / "o" / "predictions.jsonl").read_text()
