"""A private MariaDB server holding a small database of our own, for the SQL domain's tests.

Without a MariaDB server binary the tests that need one are skipped, or fail when
``LUMOS_REQUIRE_MARIADB`` is set (``.ci/run`` sets it: CI must run them).
"""

from __future__ import annotations

import os
import shutil

import pytest

DUMP = """
CREATE DATABASE IF NOT EXISTS `shop`;
USE `shop`;
CREATE TABLE `Products` (`Product_ID` int PRIMARY KEY, `Name` varchar(40), `Price` decimal(6,2), `Maker` varchar(40));
INSERT INTO `Products` VALUES (1,'Lamp',19.50,'Lux'),(2,'Desk',120.00,'Oak & Co'),(3,'Chair',45.00,'Oak & Co'),
  (4,'Rug',60.00,'Weave; Ltd');
CREATE DATABASE IF NOT EXISTS `school`;
USE `school`;
CREATE TABLE `student` (`id` int PRIMARY KEY, `name` varchar(40), `age` int);
INSERT INTO `student` VALUES (1,'Ann',20),(2,'Bo',22),(3,'Cy',22);
"""

TASKS = [
    {"db": "shop", "query": "What are the names of the products made by Oak & Co, cheapest first?",
     "gold": "SELECT Name FROM products WHERE Maker = 'Oak & Co' ORDER BY Price", "hardness": "easy",
     "db_tables": {"products": ["Product_ID", "Name", "Price", "Maker"]}},
    {"db": "school", "query": "How many students are 22 years old?",
     "gold": "SELECT count(*) FROM student WHERE age = 22", "hardness": "easy",
     "db_tables": {"student": ["id", "name", "age"]}},
    {"db": "shop", "query": "Which maker has a semicolon in its name?",
     "gold": "SELECT Maker FROM Products WHERE Maker LIKE '%;%'", "hardness": "medium",
     "db_tables": {"products": ["Product_ID", "Name", "Price", "Maker"]}},
]


def _mariadb_or_skip() -> None:
    if shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd"):
        return
    reason = "no MariaDB server here (Debian: apt-get install mariadb-server; setup.sh installs it)"
    if os.environ.get("LUMOS_REQUIRE_MARIADB"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sql_data(tmp_path_factory):
    """A data folder like InterCode's: ic_spider_dev.json (our three tasks) and ic_spider_dbs.sql."""
    import json

    folder = tmp_path_factory.mktemp("intercode_sql")
    (folder / "ic_spider_dev.json").write_text(json.dumps(TASKS), encoding="utf-8")
    (folder / "ic_spider_dbs.sql").write_text(DUMP, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def mariadb(sql_data):
    """A running private server loaded with the test dump."""
    _mariadb_or_skip()
    from lumos.tools.sql import MariaDBServer

    server = MariaDBServer(sql_data / "ic_spider_dbs.sql").start()
    yield server
    server.stop()


@pytest.fixture
def require_mariadb():
    _mariadb_or_skip()


@pytest.fixture(scope="session")
def sql_tasks():
    return TASKS


@pytest.fixture
def serve():
    """``serve(function) -> (scripted model, URL)``: an OpenAI-compatible server on 127.0.0.1 per model."""
    from lumos.llm.scripted import ScriptedGenerator
    from lumos.llm.serve import OpenAICompatibleServer

    servers = []

    def start(function):
        scripted = ScriptedGenerator(function)
        servers.append(OpenAICompatibleServer(scripted, model_name="scripted").start())
        return scripted, servers[-1].url

    yield start
    for server in servers:
        server.stop()
