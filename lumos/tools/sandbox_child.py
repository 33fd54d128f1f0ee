"""The ``Code`` sandbox's child program (run as ``python -I sandbox_child.py``; standard library only).

Reads one JSON request on stdin: ``code`` (Python source), optional ``expression`` evaluated after
it, ``variables`` (names bound before the code runs: numbers or text, given as data), ``scratch``
(the only writable directory, also the cwd) and the limits. Answers one JSON line on the original
stdout: ``{"ok": true, "value": ..., "type": ..., "stdout": ...}`` or ``{"ok": false, "error": ...,
"stdout": ...}``. The operating system isolates this process (see ``lumos.tools.sandbox``); the
rlimits and the audit-hook guard set here are an extra layer, and the guard's module is gone from
``sys.modules`` before the code runs.
"""

import ast
import contextlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import confine  # noqa: E402  (a sibling file: the project is not on an isolated child's path)

sys.path.pop(0)
MAX_TEXT = 100_000
MAX_REQUEST = 2_000_000


def main() -> None:
    request = json.loads(sys.stdin.read(MAX_REQUEST))
    answer_fd = os.dup(1)
    scratch = request["scratch"]
    os.makedirs(scratch, exist_ok=True)
    os.chdir(scratch)
    confine.apply_limits(cpu_seconds=request["cpu_seconds"], memory_mb=request["memory_mb"],
                         file_mb=request["file_mb"])
    captured = io.StringIO()
    answer: dict
    try:
        tree = ast.parse(request["code"], mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        body = compile(tree, "<code>", "exec")
        tail = compile(ast.Expression(last.value), "<code>", "eval") if last is not None else None
        expression = compile(request["expression"], "<call>", "eval") if request.get("expression") else None
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        for name, value in (request.get("variables") or {}).items():
            namespace[str(name)] = value
        install = confine.install_guard
        del sys.modules["confine"]
        globals().pop("confine", None)  # nothing the code can reach keeps the guard's module
        if request.get("guard", True):
            install(scratch, forget_denied_modules=True)
        del install
        with contextlib.redirect_stdout(captured):
            exec(body, namespace)  # the child exists to run this code, isolated
            value = eval(tail, namespace) if tail is not None else None
            if expression is not None:
                value = eval(expression, namespace)
        answer = {"ok": True, "type": type(value).__name__ if value is not None else None,
                  "value": None if value is None else str(value)[:MAX_TEXT]}
    except (Exception, SystemExit) as error:  # the boundary: every failure of the code is reported
        answer = {"ok": False, "error": f"{type(error).__name__}: {error}"[:2000]}
    answer["stdout"] = captured.getvalue()[:MAX_TEXT]
    os.write(answer_fd, (json.dumps(answer) + "\n").encode())
    os._exit(0)  # now: no waiting for threads the code left running, no atexit handlers it registered


if __name__ == "__main__":
    main()
