"""Attempts to escape the ``Code`` sandbox, called exactly as the maths tools call it (``run_code``).

Each attempt either reports ``ESCAPED`` from inside when a step works that must not, or leaves a
trace on the host that is checked afterwards (a file changed or created outside the scratch
directory, a connection to a server on loopback, a signal to this process, its priority changed,
a secret of this process in what came back, a process left running). Every attempt must also be
stopped within 2 s and leave this process's memory bounded. With bubblewrap available, every
attempt runs a second time without the in-process guard: the operating-system isolation alone
must hold.
"""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import threading
import time

import pytest

from lumos.tools.sandbox import SandboxError, isolation, run_code

TIMEOUT = 1.0
STOPPED_WITHIN = 2.0
WRITE = "ESCAPE"

# The attacks: {victim} is a host directory holding {victim}/secret.txt, {port} a TCP server on
# 127.0.0.1, {ppid} this process's pid, {unix} a Unix socket path and {abstract} an abstract one.
ATTEMPTS: dict[str, str] = {
    # --------------------------------------------------------------- file writes through every API
    "open_w": "open('{victim}/new.txt', 'w').write('x')",
    "open_append": "open('{victim}/secret.txt', 'a').write('x')",
    "os_open_creat": "import os\nos.write(os.open('{victim}/new.txt', os.O_CREAT | os.O_WRONLY), b'x')",
    "pathlib_write": "import pathlib\npathlib.Path('{victim}/new.txt').write_text('x')",
    "io_fileio": "import io\nio.FileIO('{victim}/new.txt', 'w').write(b'x')",
    "codecs_open": "import codecs\ncodecs.open('{victim}/new.txt', 'w').write('x')",
    "shutil_copy": "import shutil\nshutil.copy('/etc/ld.so.cache', '{victim}/new.txt')",
    "os_rename": "import os\nos.rename('{victim}/secret.txt', '{victim}/new.txt')",
    "os_replace": "import os\nopen('here', 'w').write('x')\nos.replace('here', '{victim}/secret.txt')",
    "os_remove": "import os\nos.remove('{victim}/secret.txt')",
    "os_truncate": "import os\nos.truncate('{victim}/secret.txt', 0)",
    "os_chmod": "import os\nos.chmod('{victim}/secret.txt', 0o777)",
    "os_utime": "import os\nos.utime('{victim}/secret.txt', (0, 0))",
    "os_symlink": "import os\nos.symlink('/etc/passwd', '{victim}/new.txt')",
    "os_link": "import os\nos.link('{victim}/secret.txt', '{victim}/new.txt')",
    "os_mkdir": "import os\nos.mkdir('{victim}/newdir')",
    "os_mkfifo": "import os\nos.mkfifo('{victim}/new.txt')",
    "os_mknod": "import os, stat\nos.mknod('{victim}/new.txt', stat.S_IFREG | 0o600)",
    "sqlite_outside": "import sqlite3\nc = sqlite3.connect('{victim}/new.txt')\nc.execute('create table t (x)')\nc.commit()",
    "sqlite_uri": "import sqlite3\nc = sqlite3.connect('file:{victim}/new.txt?mode=rwc', uri=True)\n"
                  "c.execute('create table t (x)')\nc.commit()",
    "readline_history": "import readline\nreadline.write_history_file('{victim}/new.txt')",
    "setxattr": "import os\nos.setxattr('{victim}/secret.txt', 'user.x', b'1')",
    "tempfile_dir": "import tempfile\ntempfile.mkstemp(dir='{victim}')",
    "zipfile": "import zipfile\nzipfile.ZipFile('{victim}/new.txt', 'w').writestr('a', 'b')",
    "logging_handler": "import logging\nlogging.FileHandler('{victim}/new.txt').emit(logging.makeLogRecord({{}}))",
    "dbm_open": "import dbm.dumb\ndbm.dumb.open('{victim}/new', 'c')['a'] = 'b'",
    "relative_escape": "open('../../../../../../{victim}/new.txt', 'w').write('x')",
    "symlink_then_write": "import os\nos.symlink('{victim}', 'link')\nopen('link/new.txt', 'w').write('x')",
    "write_project": "import os\nopen('/usr/lib/lumos-escape.txt', 'w').write('x')",
    # --------------------------------------------------------------- processes
    "os_system": "import os\nos.system('touch {victim}/new.txt')",
    "subprocess_run": "import subprocess\nsubprocess.run(['touch', '{victim}/new.txt'])",
    "os_fork": "import os\nif os.fork() == 0:\n    open('{victim}/new.txt', 'w')\n    os._exit(0)\nprint('ESCAPED')",
    "posix_spawn": "import os\nos.posix_spawn('/usr/bin/touch', ['touch', '{victim}/new.txt'], {{}})\nprint('ESCAPED')",
    "os_execv": "import os\nos.execv('/usr/bin/touch', ['touch', '{victim}/new.txt'])",
    "popen": "import subprocess\nsubprocess.Popen(['touch', '{victim}/new.txt']).wait()\nprint('ESCAPED')",
    "multiprocessing": "import multiprocessing\nmultiprocessing.Process(target=print).start()\nprint('ESCAPED')",
    "pty_spawn": "import pty\npty.spawn(['touch', '{victim}/new.txt'])",
    "forkpty": "import os\npid, fd = os.forkpty()\nprint('ESCAPED')",
    "grandchild_own_session": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n"
                              "    open('{victim}/new.txt', 'w')\nprint('ESCAPED')",
    "fork_bomb": "import os\nwhile True:\n    os.fork()",
    "thread_bomb": "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()",
    # --------------------------------------------------------------- network
    "socket_tcp": "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)\nprint('ESCAPED')",
    "raw_socket_module": "import _socket\ns = _socket.socket()\ns.settimeout(0.5)\ns.connect(('127.0.0.1', {port}))\n"
                         "print('ESCAPED')",
    "urllib": "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=0.5)\nprint('ESCAPED')",
    "http_client": "import http.client\nc = http.client.HTTPConnection('127.0.0.1', {port}, timeout=0.5)\n"
                   "c.request('GET', '/')\nprint('ESCAPED')",
    "udp": "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {udp_port}))",
    "unix_socket": "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{unix}')\nprint('ESCAPED')",
    "abstract_unix_socket": "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0{abstract}')\n"
                            "print('ESCAPED')",
    "tcp_ipv6": "import socket\nsocket.create_connection(('::1', {port}), timeout=0.5)\nprint('ESCAPED')",
    # --------------------------------------------------------------- signals and the parent process
    "kill_parent": "import os, signal\nos.kill({ppid}, signal.SIGUSR1)\nprint('ESCAPED')",
    "killpg_parent": "import os, signal\nos.killpg(os.getpgid({ppid}), signal.SIGUSR1)\nprint('ESCAPED')",
    "pidfd_signal": "import os, signal\nfd = os.pidfd_open({ppid})\nsignal.pidfd_send_signal(fd, signal.SIGUSR1)\n"
                    "print('ESCAPED')",
    "raw_signal_module": "import _signal\n_signal.pidfd_send_signal(__import__('os').pidfd_open({ppid}), 10)\nprint('ESCAPED')",
    "kill_everything": "import os, signal\nos.kill(-1, signal.SIGUSR1)",
    "setpriority_parent": "import os\nos.setpriority(os.PRIO_PROCESS, {ppid}, 19)\nprint('ESCAPED')",
    # --------------------------------------------------------------- the parent's memory and environment
    "environ_of_parent": "print(open('/proc/{ppid}/environ', 'rb').read())",
    "environ_of_pid1": "print(open('/proc/1/environ', 'rb').read())",
    "mem_of_parent": "f = open('/proc/{ppid}/mem', 'rb')\nprint('ESCAPED')",
    "cmdline_of_parent": "open('/proc/{ppid}/cmdline', 'rb').read()\nprint('ESCAPED')",
    "own_environ": "import os\nprint(dict(os.environ))",
    "walk_proc_environs": "import os\nfor p in os.listdir('/proc'):\n    try:\n"
                          "        print(open(f'/proc/{{p}}/environ', 'rb').read())\n    except Exception:\n        pass",
    "host_secret_file": "print(open('{victim}/secret.txt').read())",
    "home_directory": "import os\nif [n for n in os.listdir('/root') if n != '.pyenv']:\n    print('ESCAPED')",
    "ctypes_ptrace_parent": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                            "if libc.ptrace(16, {ppid}, 0, 0) == 0:\n    print('ESCAPED')",
    "ctypes_kill_parent": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                          "if libc.kill({ppid}, 10) == 0:\n    print('ESCAPED')",
    "ctypes_fork": "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.fork() >= 0:\n"
                   "    open('{victim}/new.txt', 'w')\n    print('ESCAPED')",
    # --------------------------------------------------------------- tampering with the guard
    "import_confine": "import confine\nconfine._DENIED_PREFIXES = ('zz',)\nconfine._DENIED_MODULES = frozenset()\n"
                      "import subprocess\nsubprocess.run(['touch', '{victim}/new.txt'])",
    "main_module_confine": "import __main__\n__main__.confine._DENIED_PREFIXES = ('zz',)\n"
                           "import subprocess\nsubprocess.run(['touch', '{victim}/new.txt'])",
    "gc_find_hook": "import gc\nfor o in gc.get_objects():\n    if getattr(o, '__name__', '') == 'hook' and "
                    "getattr(o, '__closure__', None):\n        for c in o.__closure__:\n"
                    "            if isinstance(c.cell_contents, (tuple, frozenset, dict)):\n"
                    "                c.cell_contents = type(c.cell_contents)()\n"
                    "import subprocess\nsubprocess.run(['touch', '{victim}/new.txt'])",
    "settrace": "import sys\nsys.settrace(lambda *a: None)\nopen('{victim}/new.txt', 'w')",
    "sys_modules_poison": "import sys, importlib\nsys.modules.pop('subprocess', None)\nimport subprocess\n"
                          "subprocess.run(['touch', '{victim}/new.txt'])",
    "builtins_swap": "import builtins, os\nbuiltins.open = os.open\nopen('{victim}/new.txt', os.O_CREAT | os.O_WRONLY)",
    "rlimit_raise": "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\nprint('ESCAPED')",
    "second_audit_hook": "import sys\nsys.addaudithook(lambda *a: None)\nopen('{victim}/new.txt', 'w')",
    "exception_frames": "try:\n    open('{victim}/new.txt', 'w')\nexcept PermissionError as e:\n    f = e.__traceback__.tb_frame\n"
                        "    import os\n    os.write(os.open('{victim}/new.txt', os.O_CREAT | os.O_WRONLY), b'x')",
    # --------------------------------------------------------------- floods and limits
    "print_flood": "while True:\n    print('x' * 10000)",
    "fd1_flood": "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
    "fd2_flood": "import os\nwhile True:\n    os.write(2, b'x' * 65536)",
    "memory_hog": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))",
    "disk_fill": "i = 0\nwhile True:\n    open(f'f{{i}}', 'wb').write(b'x' * (4 * 1024 * 1024))\n    i += 1",
    "busy_loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(60)",
    "huge_value": "'x' * (10 ** 8)",
    "deep_recursion": "def f(n):\n    return f(n + 1)\nf(0)",
}


@pytest.fixture(scope="module")
def host():
    """The host side of the attacks: victim files, servers, a signal counter and the parent's secrets."""
    victim = f"/tmp/lumos-escape-victim-{secrets.token_hex(4)}"
    os.makedirs(victim)
    secret = f"lumos-secret-{secrets.token_hex(8)}"
    with open(f"{victim}/secret.txt", "w") as handle:
        handle.write(secret)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    unix_path = f"{victim}/server.sock"
    unix_server = socket.socket(socket.AF_UNIX)
    unix_server.bind(unix_path)
    unix_server.listen(4)
    unix_server.setblocking(False)
    udp_server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_server.bind(("127.0.0.1", 0))
    udp_server.setblocking(False)
    abstract = f"lumos-escape-{secrets.token_hex(4)}"
    abstract_server = socket.socket(socket.AF_UNIX)
    abstract_server.bind("\0" + abstract)
    abstract_server.listen(4)
    abstract_server.setblocking(False)
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    old_environ = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = secret  # what a real run has in its environment
    in_memory = secret.encode() * 3  # noqa: F841  (kept alive: a secret in this process's memory)
    try:
        yield {"victim": victim, "secret": secret, "port": server.getsockname()[1], "ppid": os.getpid(),
               "unix": unix_path, "abstract": abstract, "udp_port": udp_server.getsockname()[1],
               "servers": (server, unix_server, abstract_server, udp_server),
               "signals": received}
    finally:
        signal.signal(signal.SIGUSR1, previous)
        if old_environ is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = old_environ
        for sock in (server, unix_server, abstract_server, udp_server):
            sock.close()
        subprocess.run(["rm", "-rf", victim], check=False)


def _snapshot(victim: str) -> dict[str, tuple]:
    state = {}
    for name in sorted(os.listdir(victim)):
        info = os.lstat(os.path.join(victim, name))
        state[name] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_nlink)
    try:
        state["xattrs"] = tuple(os.listxattr(f"{victim}/secret.txt"))
    except (AttributeError, OSError):  # a file system without extended attributes
        state["xattrs"] = ()
    return state


def _accepted(servers) -> int:
    count = 0
    for sock in servers:
        try:
            while True:
                if sock.type == socket.SOCK_DGRAM:
                    sock.recvfrom(65536)
                else:
                    sock.accept()[0].close()
                count += 1
        except (BlockingIOError, OSError):
            pass
    return count


def _escape_attempts():
    for name in ATTEMPTS:
        for guard in (True, False):
            marks = [] if guard else [pytest.mark.skipif(isolation() != "namespaces",
                                                         reason="without namespaces the guard is the isolation")]
            yield pytest.param(name, guard, id=f"{name}-{'guard' if guard else 'os-only'}", marks=marks)


def test_the_suite_has_at_least_sixty_attempts():
    assert len(ATTEMPTS) >= 60


@pytest.mark.parametrize("name, guard", list(_escape_attempts()))
def test_attempt_does_not_escape(host, name, guard):
    if isolation() == "rlimits" and name in {"kill_everything", "fork_bomb", "host_secret_file", "home_directory",
                                              "cmdline_of_parent", "walk_proc_environs", "setpriority_parent"}:
        pytest.skip("without namespaces only the guard and rlimits stand between this attempt and the host")
    code = ATTEMPTS[name].format(**{k: v for k, v in host.items() if isinstance(v, (str, int))})
    before = _snapshot(host["victim"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    threads_before = threading.active_count()
    priority_before = os.getpriority(os.PRIO_PROCESS, 0)  # the suite may itself run under nice
    start = time.monotonic()
    try:
        result = run_code(code, timeout=TIMEOUT, audit_guard=guard)
        seen = f"{result.value} {result.stdout}"
    except SandboxError as error:
        seen = str(error)
    elapsed = time.monotonic() - start
    time.sleep(0.05)  # a signal or a late write would land by now
    assert "ESCAPED" not in seen, seen[:500]
    assert host["secret"] not in seen, "a secret of the parent came back"
    assert _snapshot(host["victim"]) == before, "a host file changed"
    assert not os.path.exists("/usr/lib/lumos-escape.txt")
    assert _accepted(host["servers"]) == 0, "a connection reached the host"
    assert host["signals"] == [], "a signal reached the parent"
    assert os.getpriority(os.PRIO_PROCESS, 0) == priority_before, "the parent's priority changed"
    assert elapsed < STOPPED_WITHIN, f"stopped after {elapsed:.2f} s"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000, "the caller's memory grew"
    assert threading.active_count() == threads_before
    assert _processes_mentioning(host["victim"]) == [], "a process the attempt started is still running"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_a_normal_evaluation_run_does_not_leak_the_parents_secrets(tmp_path):
    """The issue's reproduction: a grounder reply reading every /proc/*/environ, through the real eval CLI."""
    import json
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    secret = f"sk-{secrets.token_hex(12)}"
    data = tmp_path / "gsm"
    data.mkdir()
    (data / "test.jsonl").write_text(json.dumps({"question": "What is 1 + 1?", "answer": "...\n#### 2"}) + "\n")
    reads = ("[open('/proc/' + p + '/environ', 'rb').read() for p in __import__('os').listdir('/proc') "
             "if p.isdigit()] + [open('/proc/' + str(__import__('os').getppid()) + '/environ', 'rb').read()]")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [
        [r"Subgoal 1 is .*Should we stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."],
        [r"Subgoal to be grounded", f"R1 = Code({reads})"],
        [r"None\.\n<\|assistant\|>\n$", "Subgoal 1: Read the environment."]]}))
    save = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "eval.gsm.run_eval", "--data_dir", str(data), "--save_dir", str(save),
                           "--planner", f"scripted:{rules}", "--grounder", f"scripted:{rules}"], cwd=repo,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo), "OPENAI_API_KEY": secret})
    assert done.returncode == 0, done.stderr
    written = (save / "predictions.jsonl").read_text()
    assert json.loads(written)["steps"][0]["calls"][0]["action"].startswith("R1 = Code(")
    call = json.loads(written)["steps"][0]["calls"][0]
    assert "not allowed" in (call.get("error") or ""), call  # the guard refused; the OS view had no such process
    assert secret not in written and secret not in done.stdout and secret not in done.stderr
