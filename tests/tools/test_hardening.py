"""Issue reproductions for the maths tools: values as data, bounded inputs, deadlines, non-finite values."""

import os
import time

import pytest

from lumos.format import parse_action
from lumos.tools.base import MAX_ACTION_ARGS, ToolError
from lumos.tools.engines.numbers import MAX_FORMULA, normalize_arithmetic


def run(toolbox, lines, variables=None):
    variables = {} if variables is None else variables
    return [toolbox.execute(parse_action(line).without_result(), variables) for line in lines], variables


def test_earlier_results_reach_code_as_data_not_source(maths, tmp_path):
    marker = tmp_path / "ran"
    paragraph = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    results, _ = run(maths, ["R2 = Code(R1)", "R3 = Code(len(R1))", "R4 = Code(If R5 > 2, R5 * 2, 0)"],
                     {"R1": paragraph, "R5": "21"})
    assert results == [paragraph, str(len(paragraph)), "42"]
    assert not marker.exists()


def test_function_arguments_are_bound_values(maths):
    results, _ = run(maths, ["R1 = Code(def double(v): return v * 2)", "R2 = Calculator(R1(R3))"], {"R3": "2.5"})
    assert results[1] == "5"


@pytest.mark.parametrize("text", ["9" * 9000 + " + 1", "1" * 9000 + "½", "1" * 9000 + "% of 2", "1." * 4500 + "%"])
def test_normalisation_is_linear_on_long_runs_of_digits(text):
    start = time.monotonic()
    normalize_arithmetic(text)
    assert time.monotonic() - start < 0.5


def test_overlong_formulas_are_refused_before_any_pattern_runs():
    start = time.monotonic()
    with pytest.raises(ToolError, match="longer than the limit"):
        normalize_arithmetic("1" * (MAX_FORMULA * 10))
    assert time.monotonic() - start < 0.05


@pytest.mark.parametrize("value", ["9" * 9_000, "x" * 9_000])
def test_substitution_is_measured_as_it_is_built(maths, value):
    """``R1 + R1 + ...`` of a long ``R1`` is refused as soon as the substituted text passes the limit."""
    start = time.monotonic()
    with pytest.raises(ToolError, match=f"longer than the limit {MAX_FORMULA} once the results are substituted"):
        run(maths, ["R2 = Calculator(" + " + ".join(["R1"] * 2000) + ")"], {"R1": value})
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("lines", [
    ["R1 = Code('1' * 20000)", "R2 = Calculator(R1 + 1)"],
    ["R1 = Calculator(" + "R2(" * 3000 + "1" + ")" * 3000 + ")"],
    ["R1 = Calculator(" + "=a" * 4000 + ")"],
    ["R1 = Calculator(" + "9" * 99_000 + ")"],
    ["R1 = SolveEquation(" + "x = " * 2000 + "1)"],
])
def test_quadratic_inputs_end_quickly(maths, lines):
    run(maths, ["R9 = Calculator(x + 1)"])  # a warm worker
    start = time.monotonic()
    with pytest.raises(ToolError):
        run(maths, lines, {"R2": "def f(v): return v"})
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("formula, message", [("x/0", "not finite"), ("log(0)", "not finite"),
                                              ("oo - oo", "not finite"), ("1/0", "division by zero")])
def test_values_that_are_not_finite_are_errors(maths, formula, message):
    with pytest.raises(ToolError, match=message):
        run(maths, [f"R1 = Calculator({formula})"])


def test_names_with_digits_are_symbols(maths):
    assert run(maths, ["R1 = Calculator(x1 + 1)", "R2 = Calculator(2x + xy)"])[0] == ["x1 + 1", "x*y + 2*x"]


def test_the_symbolic_worker_gets_a_scrubbed_environment(maths, monkeypatch):
    from lumos.tools.worker import SymbolicWorker

    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    worker = SymbolicWorker(timeout=5.0)
    try:
        worker.start()
        with open(f"/proc/{worker._process.pid}/environ", "rb") as handle:
            environ = handle.read()
    finally:
        worker.close()
    assert b"sk-must-not-leak" not in environ and b"OPENAI_API_KEY" not in environ
    assert os.environ["OPENAI_API_KEY"] == "sk-must-not-leak"


def test_toolbox_bounds_arguments_and_quotes_them_short(maths):
    from lumos.format import Action

    with pytest.raises(ToolError, match="more than the limit"):
        maths.execute(Action(tool="Calculator", args="1+" * 60_000 + "1", outputs=("R1",)), {})
    with pytest.raises(ToolError, match=rf"Count\(\.\.\.\): the argument has {MAX_ACTION_ARGS + 1} characters"):
        maths.execute(Action(tool="Count", args="1" * (MAX_ACTION_ARGS + 1), outputs=("R1",)), {})
    with pytest.raises(ToolError, match=r"\.\.\. \(\d+ characters\)"):
        maths.execute(Action(tool="Calculator", args="R" + "7" * 5000 + " + 1", outputs=("R1",)), {})


def test_the_symbolic_worker_runs_in_the_sandboxs_namespaces():
    from lumos.tools.sandbox import isolation
    from lumos.tools.worker import SymbolicWorker

    if isolation() != "namespaces":
        pytest.skip("bubblewrap namespaces are not available here (the sandbox warned)")
    worker = SymbolicWorker(timeout=5.0)
    try:
        worker.start()
        with open(f"/proc/{worker._process.pid}/cmdline", "rb") as handle:
            command = handle.read().split(b"\0")
        assert command[0].endswith(b"bwrap") and b"--unshare-all" in command and b"--seccomp" in command
        assert worker.call("calculate", "x1 + x1") == "2*x1"
    finally:
        worker.close()


def test_the_worker_outlives_the_thread_that_started_it_but_not_its_process(tmp_path):
    import signal
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from lumos.tools.worker import SymbolicWorker

    worker = SymbolicWorker(timeout=5.0)
    try:
        starter = threading.Thread(target=worker.start)
        starter.start()
        starter.join()
        time.sleep(0.3)
        assert worker.call("calculate", "x + x") == "2*x" and worker.restarts == 0
    finally:
        worker.close()
    marker = f"lumos-worker-owner-{os.getpid()}"
    owner = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lumos.tools.worker import SymbolicWorker\n"
                              "w = SymbolicWorker()\nw.start()\nprint(w._process.pid, flush=True)\ntime.sleep(60)",
                              marker], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    worker_pid = int(owner.stdout.readline())
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{worker_pid}"):
        try:
            os.waitpid(worker_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            with open(f"/proc/{worker_pid}/stat") as handle:
                if handle.read().split(") ")[1].startswith("Z"):
                    break  # exited; only its parent (init here) has yet to reap it
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        assert not os.path.exists(f"/proc/{worker_pid}"), "the worker outlived the process that owned it"
