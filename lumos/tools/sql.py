"""The SQL domain: queries run against a real MySQL-compatible server (MariaDB), results come back as rows.

One action, ``R1 = SQL(SELECT Name FROM singer ORDER BY Age)`` (docs/FORMAT.md, "SQL actions"):
the argument is the query as written, up to the action's last ``)``. Its result is the row list as
InterCode's SQL environment shows it (``[('Joe Sharp',), ('Timbaland',)]``, at most
``row_limit`` rows written out), ``Error executing query: <server message>`` for SQL the server
refuses (an observation, never a failure of the episode), or ``no result set (N rows affected)``.

Each task gets its own :class:`SqlToolbox`, one connection to its database. Nothing the agent runs
can change what the next task sees: the session is read-only (``SET SESSION TRANSACTION READ
ONLY``), everything runs inside a transaction that is rolled back when the toolbox is closed, and
the server this module starts (:class:`MariaDBServer`) gives the agent an account that may only
``SELECT``. The reward is InterCode's (:func:`intercode_reward`): intersection over union of the
result rows, scaled by Kendall's tau of their order when both have rows.

PyMySQL is imported on the first query; building a toolbox connects to nothing.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, unquote, urlparse

from lumos.format import VARIABLE, Action, FormatError
from lumos.tools.base import Toolbox
from lumos.vocabulary import vocabulary

ERROR_PREFIX = "Error executing query: "
READER = "lumos_reader"  # the SELECT-only account of a server this module starts
STATEMENT_SECONDS = 10  # MariaDB's max_statement_time for each agent query

_ACTION = re.compile(rf"(?P<output>{VARIABLE}) = SQL\((?P<query>.*)\)", re.S)
_BOUNDARY = re.compile(rf"; (?={VARIABLE} = SQL\()")
_SHAPE = "'Rk = SQL(<query>)'"
_NEWLINES = re.compile(r"\s*\n\s*")  # an action is one line: a query's line breaks become spaces

Rows = list  # a result set: a list of row tuples


class SqlSetupError(RuntimeError):
    """The database cannot be used (no server binary, a bad ``--db_url``, PyMySQL missing); one line."""


# --------------------------------------------------------------------------- the action grammar


def parse_sql_action(text: str) -> Action:
    """``Rk = SQL(<query>)`` as an :class:`Action` whose args are the query (to the last ``)``)."""
    match = _ACTION.fullmatch(text.strip())
    if not match:
        raise FormatError(f"not a SQL action, expected {_SHAPE}", text)
    return Action(tool="SQL", args=match.group("query").strip(), outputs=(match.group("output"),))


def parse_sql_actions(reply: str) -> list[Action]:
    """A grounding reply's SQL actions, split at ``"; "`` only where the next ``Rk = SQL(`` starts."""
    if not reply.strip():
        raise FormatError(f"no action, expected {_SHAPE}", reply)
    return [parse_sql_action(part) for part in _BOUNDARY.split(reply.strip())]


def render_sql_action(query: str, output: str = "R1") -> str:
    """The action text of ``query`` (what a grounder writes, and gold plans are made of)."""
    return f"{output} = SQL({_NEWLINES.sub(' ', query.strip())})"


def render_rows(observation: Rows | str | None, limit: int = 50) -> str:
    """An observation as the agent reads it: the row list (``limit`` rows at most), or the error text."""
    if isinstance(observation, str):
        return observation
    if observation is None:
        return "no result set"
    if len(observation) <= limit:
        return str(observation)
    return f"{observation[:limit]} ... ({len(observation)} rows, the first {limit} shown)"


# --------------------------------------------------------------------------- the reward


def kendall_tau_b(x: Sequence[Any], y: Sequence[Any]) -> float:
    """Kendall's tau-b of two equally long sequences (ties counted as scipy counts them); nan when undefined."""
    n = len(x)
    if n < 2:
        return math.nan
    concordant = discordant = x_ties = y_ties = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                x_ties += 1
            elif dy == 0:
                y_ties += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + x_ties) * (concordant + discordant + y_ties))
    return (concordant - discordant) / denominator if denominator else math.nan


def _in_intersection(items: list[str], intersection: Counter) -> list[str]:
    """``items`` in their order, each kept while the intersection still holds a copy of it."""
    left, kept = Counter(intersection), []
    for item in items:
        if left[item] > 0:
            left[item] -= 1
            kept.append(item)
    return kept


def intercode_reward(agent: Rows | str | None, gold: Rows | str | None) -> float:
    """InterCode-SQL's reward: the IoU of the row multisets (rows compared as ``str(row)``), times
    Kendall's tau between the orders of the shared rows when it is defined (rounded to 2 places);
    1 when both results are empty; 0 when either is not a row list (an error, no result set)."""
    if not isinstance(agent, list) or not isinstance(gold, list):
        return 0.0
    agent_rows, gold_rows = [str(row) for row in agent], [str(row) for row in gold]
    agent_counts, gold_counts = Counter(agent_rows), Counter(gold_rows)
    intersection = agent_counts & gold_counts
    union = agent_counts | gold_counts
    if not union:
        return 1.0
    reward = sum(intersection.values()) / sum(union.values())
    if intersection:
        tau = kendall_tau_b(_in_intersection(agent_rows, intersection), _in_intersection(gold_rows, intersection))
        if not math.isnan(tau):
            reward = round(tau * reward, 2)
    return reward


# --------------------------------------------------------------------------- connections


def connection_options(db_url: str) -> dict[str, Any]:
    """PyMySQL's connect() options of ``mysql://user[:password]@host[:port]/[?unix_socket=PATH]``."""
    parsed = urlparse(db_url)
    if parsed.scheme not in ("mysql", "mariadb"):
        raise SqlSetupError(f"--db_url {db_url}: expected mysql://user[:password]@host[:port][/?unix_socket=PATH]")
    options: dict[str, Any] = {"user": unquote(parsed.username or getpass.getuser()),
                               "password": unquote(parsed.password or ""), "host": parsed.hostname or "localhost"}
    if parsed.port:
        options["port"] = parsed.port
    socket = parse_qs(parsed.query).get("unix_socket")
    if socket:
        options["unix_socket"] = socket[0]
    return options


def require_driver():
    """The PyMySQL module; :class:`SqlSetupError` in one line when it is not installed."""
    try:
        import pymysql
    except ImportError:
        raise SqlSetupError("the SQL domain needs PyMySQL: pip install PyMySQL") from None
    return pymysql



def _server_message(error: Exception) -> str:
    args = getattr(error, "args", ())
    return str(args[1]) if len(args) >= 2 else str(error)


class SqlSession:
    """One task's connection: read-only, in a transaction rolled back on close; opened on first use."""

    def __init__(self, options: dict[str, Any], database: str | None, row_limit: int = 50):
        self.options, self.database, self.row_limit = options, database, row_limit
        self.connection = None
        self.observation: Rows | str | None = None  # the last query's result, as InterCode keeps it

    def _cursor(self):
        if self.connection is None:
            pymysql = require_driver()
            try:
                self.connection = pymysql.connect(**self.options, database=self.database, autocommit=False,
                                                  charset="utf8mb4", connect_timeout=10)
            except pymysql.err.MySQLError as error:
                raise SqlSetupError(f"cannot connect to the database {self.database!r}: "
                                    f"{_server_message(error)}") from None
            with self.connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                try:  # MariaDB's per-statement time limit (MySQL has its own name for it)
                    cursor.execute(f"SET SESSION max_statement_time = {STATEMENT_SECONDS}")
                except pymysql.err.MySQLError:
                    pass
                cursor.execute("START TRANSACTION READ ONLY")
        return self.connection.cursor()

    def query(self, sql: str) -> Rows | str | None:
        """Run ``sql``; its rows, ``Error executing query: ...`` or None (no result set). Never raises for bad SQL."""
        pymysql = require_driver()
        cursor = self._cursor()
        try:
            cursor.execute(sql)
            observation = [tuple(row) for row in cursor.fetchall()] if cursor.description is not None else None
        except pymysql.err.MySQLError as error:
            observation = ERROR_PREFIX + _server_message(error)
        except (ValueError, TypeError, UnicodeError) as error:  # e.g. a query PyMySQL cannot encode
            observation = ERROR_PREFIX + str(error)
        finally:
            cursor.close()
        return observation

    def run(self, args: str, variables: dict[str, str]) -> list[str]:
        """The ``SQL`` tool: run the agent's query; the observation becomes the result text."""
        self.observation = self.query(args)
        return [render_rows(self.observation, self.row_limit)]

    def close(self) -> None:
        """Roll back whatever the task did and close the connection."""
        if self.connection is not None:
            try:
                self.connection.rollback()
                self.connection.close()
            except Exception:  # noqa: BLE001 - a connection the server already dropped has nothing to undo
                pass
            self.connection = None


class SqlToolbox(Toolbox):
    """The ``sql`` domain's toolbox for one task's database (``session``: its connection)."""

    session: SqlSession

    def read_actions(self, reply: str) -> list[Action]:
        return parse_sql_actions(reply)

    def variables_in(self, action: Action) -> list[int]:
        return []  # R<n> inside a query is SQL text, not a reference

    @property
    def observation(self) -> Rows | str | None:
        return self.session.observation


def check_connection(db_url: str) -> None:
    """Connect once to the server at ``db_url``; :class:`SqlSetupError` (one line) when PyMySQL is missing or
    the server cannot be reached, so a setup mistake stops the run before any task."""
    session = SqlSession(connection_options(db_url), None)
    try:
        session.query("SELECT 1")
    finally:
        session.close()


def sql_toolbox(db_url: str | None = None, database: str | None = None, *, row_limit: int = 50) -> SqlToolbox:
    """The SQL toolbox of ``database`` on the server at ``db_url`` (connected on the first query)."""
    session = SqlSession(connection_options(db_url) if db_url else {}, database, row_limit)
    box = SqlToolbox.from_vocabulary(vocabulary("sql"), {"SQL": session.run}, on_close=session.close)
    box.session = session
    return box


# --------------------------------------------------------------------------- a private server


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None)
        if found:
            return found
    raise SqlSetupError(f"no MariaDB server here ({' / '.join(names)} not found): install it "
                        "(apt-get install mariadb-server, as setup.sh does) or give --db_url")


def _tail(output: str) -> str:
    """A program's output on one line, its last 300 characters (what a setup error quotes)."""
    return " ".join(output.split())[-300:]


def server_binary() -> str:
    """The MariaDB server program; :class:`SqlSetupError` in one line when it is not installed."""
    return _binary("mariadbd", "mysqld")


MAX_CONNECTIONS = 1000  # the private server's; each task in progress holds one connection


class MariaDBServer:
    """A MariaDB server of our own: a fresh data folder and a socket in a temporary folder, no TCP.

    ``dump`` (SQL text, e.g. InterCode's ``ic_spider_dbs.sql``) is loaded at start; every database
    it creates can then be read through ``url`` by a ``SELECT``-only account. ``stop()`` removes all.

        with MariaDBServer("ic_spider_dbs.sql") as server:
            box = sql_toolbox(server.url, "concert_singer")
    """

    def __init__(self, dump: str | Path | None = None, *, start_seconds: float = 60.0):
        self.dump = Path(dump) if dump else None
        self.start_seconds = start_seconds
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(self.folder / "mysqld.sock")

    @property
    def url(self) -> str:
        """Where the agent connects: the read-only account on the private socket."""
        return f"mysql://{READER}@localhost/?unix_socket={self.socket}"

    @property
    def _admin(self) -> str:
        return "root" if os.geteuid() == 0 else getpass.getuser()

    def start(self) -> "MariaDBServer":
        install, server = _binary("mariadb-install-db", "mysql_install_db"), server_binary()
        client, check = _binary("mariadb", "mysql"), _binary("mariadb-check", "mysqlcheck")
        try:
            self._start(install, server, client, check)
        except SqlSetupError:
            self.stop()
            raise
        return self

    def _start(self, install: str, server: str, client: str, check: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="lumos-mariadb-"))
        data, log = self.folder / "data", self.folder / "server.log"
        user = ["--user=" + self._admin] if os.geteuid() == 0 else []
        done = subprocess.run([install, "--no-defaults", f"--datadir={data}", "--skip-test-db",
                               "--auth-root-authentication-method=socket", *user], capture_output=True, text=True)
        if done.returncode != 0:
            raise SqlSetupError(f"mariadb-install-db failed: {_tail(done.stderr or done.stdout)}")
        self.process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--socket={self.socket}", "--skip-networking",
             f"--pid-file={self.folder / 'mysqld.pid'}", f"--log-error={log}", "--skip-log-bin",
             "--lower-case-table-names=1", "--innodb-stats-auto-recalc=0",
             # one connection per task in progress (run_eval's --active_tasks), beyond the default 151
             f"--max-connections={MAX_CONNECTIONS}", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_seconds
        while not self._answers(client):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                raise SqlSetupError(f"the MariaDB server did not start: {' '.join(tail.split())}")
            time.sleep(0.2)
        setup = f"CREATE USER '{READER}'@'localhost'; GRANT SELECT, SHOW VIEW ON *.* TO '{READER}'@'localhost';"
        if self.dump is not None:
            self._client(client, self.dump.read_text(encoding="utf-8", errors="replace"), "loading " + str(self.dump))
        self._client(client, setup, "creating the read-only account")
        # Table statistics settled once, after loading and before any task: a background recalculation during
        # the run could change a query plan, and with it the row order of a query without ORDER BY.
        done = subprocess.run(self._command(check, "--analyze", "--all-databases", "--silent"),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SqlSetupError(f"analysing the tables: {_tail(done.stderr or done.stdout)}")

    def _command(self, program: str, *args: str) -> list[str]:
        """``program`` (a client, mariadb-check) connecting as the admin through the private socket."""
        return [program, "--no-defaults", f"--socket={self.socket}", f"--user={self._admin}", *args]

    def _client(self, client: str, sql: str, what: str) -> None:
        done = subprocess.run(self._command(client), input=sql, capture_output=True, text=True)
        if done.returncode != 0:
            raise SqlSetupError(f"{what}: {_tail(done.stderr)}")

    def _answers(self, client: str) -> bool:
        if not Path(self.socket).exists():
            return False
        return subprocess.run(self._command(client, "-e", "SELECT 1"), capture_output=True).returncode == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> "MariaDBServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]


def schema_text(database: str, tables: Sequence[Table]) -> str:
    """The schema as the planner and grounder read it: ``Database d: singer(Singer_ID, Name, ...); ...``."""
    return f"Database {database}: " + "; ".join(f"{t.name}({', '.join(t.columns)})" for t in tables)
