import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from lumos.tools.sandbox import SandboxError, run_code


def test_value_of_last_expression_and_printed_output():
    result = run_code("def f(a, b):\n    return a * b\nprint('hello')\nf(6, 7)")
    assert (result.value, result.value_type, result.stdout) == ("42", "int", "hello\n")


def test_expression_is_evaluated_after_the_code():
    assert run_code("def area(r): return 3 * r * r", expression="area(2)").value == "12"


def test_errors_of_the_code_are_reported_with_their_type():
    with pytest.raises(SandboxError, match="ZeroDivisionError"):
        run_code("1 / 0")


def test_infinite_loop_is_stopped():
    start = time.monotonic()
    with pytest.raises(SandboxError, match="time limit"):
        run_code("while True:\n    pass", timeout=1.0)
    assert time.monotonic() - start < 5


def test_sleeping_code_is_stopped_by_the_wall_clock():
    start = time.monotonic()
    with pytest.raises(SandboxError, match="time limit"):
        run_code("import time\ntime.sleep(30)", timeout=0.5)
    assert time.monotonic() - start < 5


def test_memory_hog_is_stopped():
    with pytest.raises(SandboxError, match="memory"):
        run_code("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", memory_mb=256)


def test_network_is_refused():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.3)
    port = server.getsockname()[1]
    try:
        with pytest.raises(SandboxError, match="not allowed"):
            run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}))")
        with pytest.raises(SandboxError, match="not allowed"):
            run_code(f"import _socket\n_socket.socket().connect(('127.0.0.1', {port}))")
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever reached the server
    finally:
        server.close()


@pytest.mark.parametrize("target", ["../x", "/tmp/lumos-sandbox-escape.txt", "sub/../../x"])
def test_writing_outside_the_scratch_dir_is_refused(target):
    with pytest.raises(SandboxError, match="outside the scratch directory"):
        run_code(f"open({target!r}, 'w').write('escaped')")
    assert not Path("/tmp/lumos-sandbox-escape.txt").exists()


def test_changing_files_outside_the_scratch_dir_is_refused():
    with tempfile.NamedTemporaryFile(delete=False) as victim:
        path = victim.name
    try:
        with pytest.raises(SandboxError, match="outside the scratch directory"):
            run_code(f"import os\nos.remove({path!r})")
        with pytest.raises(SandboxError, match="outside the scratch directory"):
            run_code(f"import os\nos.open({path!r}, os.O_WRONLY | os.O_TRUNC)")
        assert os.path.exists(path)
    finally:
        os.remove(path)


def test_writing_in_the_scratch_dir_works():
    result = run_code("import os\nos.makedirs('out', exist_ok=True)\n"
                      "with open('out/notes.txt', 'w') as f:\n    f.write('kept')\n"
                      "open('out/notes.txt').read()")
    assert result.value == "kept"


@pytest.mark.parametrize("code", ["import os\nos.system('true')", "import subprocess\nsubprocess.run(['true'])",
                                  "import os\nos.fork()", "import ctypes", "import os\nos.kill(1, 0)",
                                  "import os\nos.execv('/bin/true', ['true'])"])
def test_new_processes_and_native_code_are_refused(code):
    with pytest.raises(SandboxError, match="not allowed"):
        run_code(code)


def test_large_files_are_refused():
    with pytest.raises(SandboxError):
        run_code("open('big', 'wb').write(b'x' * (4 * 1024 * 1024))", file_mb=1)


def test_each_run_gets_a_fresh_scratch_dir():
    first = run_code("import os\nopen('mark', 'w').write('1')\nos.getcwd()").value
    second = run_code("import os\n(os.getcwd(), os.path.exists('mark'))").value
    assert first not in second and "False" in second
    assert not os.path.exists(first)  # removed after the run


def test_a_weaker_fallback_is_announced_once(monkeypatch):
    from lumos.tools import sandbox

    monkeypatch.setattr(sandbox, "_probe", lambda: ("rlimits", "bubblewrap (bwrap) is not installed"))
    monkeypatch.setattr(sandbox, "_warned", set())
    with pytest.warns(sandbox.SandboxWarning, match="bwrap.*not installed") as caught:
        assert run_code("6 * 7").value == "42"
        assert run_code("1 + 1").value == "2"
    assert len([w for w in caught if issubclass(w.category, sandbox.SandboxWarning)]) == 1


def test_variables_are_bound_as_data_not_source():
    result = run_code("R2 * 2", variables={"R1": "__import__('os').system('true')", "R2": 21})
    assert result.value == "42"
    assert run_code("R1", variables={"R1": "__import__('os')"}).value == "__import__('os')"


def test_output_flood_is_cut_off_and_the_whole_call_is_bounded():
    start = time.monotonic()
    with pytest.raises(SandboxError, match="output|time limit"):
        run_code("import os\nwhile True:\n    os.write(1, b'x' * 65536)", timeout=1.0)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("code", [
    "import _signal\n_signal.pidfd_send_signal(__import__('os').pidfd_open(1), 0)",
    "open('/proc/1/environ', 'rb').read()",
    "import os\nos.mkfifo('{tmp}/fifo')",
    "import os\nos.setxattr('{tmp}', 'user.x', b'1')",
    "import sqlite3\nsqlite3.connect('file:{tmp}/db?mode=rwc', uri=True).execute('create table t (x)')",
])
def test_without_namespaces_the_guard_still_refuses(monkeypatch, tmp_path, code):
    from lumos.tools import sandbox

    monkeypatch.setattr(sandbox, "_probe", lambda: ("rlimits", "forced for this test"))
    monkeypatch.setattr(sandbox, "_warned", {"rlimits"})
    with pytest.raises(SandboxError, match="not allowed"):
        run_code(code.format(tmp=tmp_path))
    assert os.listdir(tmp_path) == []


def _system_python() -> str | None:
    from lumos.tools.sandbox import _reachable_by_others

    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and _reachable_by_others(candidate):
            return os.path.realpath(candidate)
    return None


@pytest.mark.skipif(os.geteuid() != 0 or _system_python() is None or not shutil.which("unshare")
                    or not shutil.which("setpriv"), reason="the unprivileged fallback needs root, unshare, setpriv "
                                                             "and an interpreter any uid can read")
def test_the_unprivileged_fallback_isolates_without_bubblewrap(monkeypatch, tmp_path):
    import sys

    from lumos.tools import sandbox

    monkeypatch.setattr(sandbox, "_probe", lambda: ("unprivileged", "forced for this test"))
    monkeypatch.setattr(sandbox, "_warned", {"unprivileged"})
    monkeypatch.setattr(sys, "executable", _system_python())
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback-secret")
    assert run_code("import os\n(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]))",
                    audit_guard=False).value == "(65534, 1)"  # only itself: PID 1 of its own namespace
    for attack in (f"open({str(victim)!r}, 'w').write('x')", f"open('/proc/{os.getpid()}/environ').read()",
                   "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=0.5)",
                   f"import os\nos.kill({os.getpid()}, 0)"):
        with pytest.raises(SandboxError):
            run_code(attack, audit_guard=False)
    assert victim.read_text() == "kept"
    assert run_code("open('mine.txt', 'w').write('ok')\nopen('mine.txt').read()").value == "ok"
    start = time.monotonic()
    with pytest.raises(SandboxError, match="time limit"):
        run_code("while True:\n    pass", timeout=0.5, audit_guard=False)
    assert time.monotonic() - start < 2.0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
                    reason="the root-namespaces fallback needs root, unshare and setpriv")
def test_the_root_namespaces_fallback_keeps_network_and_processes_out_of_reach(monkeypatch):
    from lumos.tools import sandbox

    monkeypatch.setattr(sandbox, "_probe", lambda: ("root-namespaces", "forced for this test"))
    monkeypatch.setattr(sandbox, "_warned", {"root-namespaces"})
    assert run_code("import os\nlen([p for p in os.listdir('/proc') if p.isdigit()])", audit_guard=False).value == "1"
    for attack in (f"open('/proc/{os.getpid()}/environ').read()", f"import os\nos.kill({os.getpid()}, 0)",
                   "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=0.5)"):
        with pytest.raises(SandboxError):
            run_code(attack, audit_guard=False)
    with pytest.raises(SandboxError, match="not allowed"):
        run_code("open('/etc/lumos-escape', 'w')")  # the guard is what holds files here


def test_threads_and_exit_handlers_the_code_leaves_behind_do_not_hold_the_answer():
    start = time.monotonic()
    result = run_code("import threading, time, atexit\nthreading.Thread(target=time.sleep, args=(30,)).start()\n"
                      "atexit.register(time.sleep, 30)\n6 * 7")
    assert result.value == "42" and time.monotonic() - start < 1.5


def test_a_helper_sees_read_only_paths_that_live_below_tmp(tmp_path):
    """A project (or a virtual environment) under /tmp stays visible to an isolated helper: the helper's
    fresh /tmp is mounted before the read-only binds, not over them (the symbolic worker imports lumos
    from the project root)."""
    import subprocess
    import sys

    from lumos.tools import sandbox

    if sandbox.isolation() != "namespaces":
        pytest.skip(f"bubblewrap namespaces are not available here ({sandbox.isolation()})")
    project = Path(tempfile.mkdtemp(prefix="lumos-project-", dir="/tmp"))
    try:
        (project / "marker.txt").write_text("seen")
        os.chmod(project, 0o755)
        os.chmod(project / "marker.txt", 0o644)
        program = [os.path.realpath(sys.executable), "-I", "-c",
                   f"import pathlib; print(pathlib.Path({str(project / 'marker.txt')!r}).read_text())"]
        command, filter_fd = sandbox.isolated_command(program, read_only=(str(project),))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                  pass_fds=(filter_fd,) if filter_fd is not None else ())
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        assert done.returncode == 0 and done.stdout.strip() == "seen", done.stderr
    finally:
        shutil.rmtree(project)
