"""10,000 fuzzed grounded actions through ``Agent.run``: every task ends with a recorded status, no batch is lost.

The grounder is scripted: each task's reply is a few actions drawn by a seeded generator from
pieces that broke the loop before (``R<5000 digits> = ...``, ``R1(R1(...))`` nested thousands
deep, huge numbers, unbalanced brackets, lone surrogates, unknown tools) mixed with plain ones.
The toolbox is the maths vocabulary over the real in-process arithmetic path, plus one tool that
raises whatever a buggy tool could raise, so a batch runs in well under a second.
"""

from __future__ import annotations

import random
import re

from lumos.agent import Agent
from lumos.llm.scripted import ScriptedGenerator
from lumos.tools.engines.arithmetic import NotArithmetic, evaluate_arithmetic
from lumos.tools.base import Toolbox, ToolError
from lumos.tools.engines.numbers import format_number, normalize_arithmetic
from lumos.vocabulary import MATHS

TASKS_PER_BATCH = 100
BATCHES = 42
STATUSES = {"finished", "step_limit", "parse_error", "tool_error", "generation_error"}
_EXCEPTIONS = [ValueError("bad"), RecursionError("deep"), KeyError("k"), ZeroDivisionError("zero"),
               TypeError("type"), IndexError("index"), OverflowError("big"), MemoryError(), AttributeError("attr"),
               UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogate"), AssertionError("assert")]


def _calculator(args: str, variables) -> list[str]:
    text = re.sub(r"\bR(\d{1,6})\b", lambda m: f"({variables.get(m.group(0), '0')})", args)
    try:
        return [format_number(evaluate_arithmetic(normalize_arithmetic(text)))]
    except NotArithmetic as error:
        raise ToolError(str(error)) from None


def _exploding(seed: str):
    def tool(args: str, variables) -> list[str]:
        raise _EXCEPTIONS[hash((seed, args)) % len(_EXCEPTIONS)]
    return tool


def fuzz_toolbox() -> Toolbox:
    functions = {name: _exploding(name) for name in MATHS.tool_names}
    functions["Calculator"] = _calculator
    functions["Define"] = lambda args, variables: [args.strip() or "0"]
    return Toolbox.from_vocabulary(MATHS, functions)


def _argument(rng: random.Random) -> str:
    choice = rng.randrange(12)
    if choice == 0:
        return "R1(" * rng.randint(100, 1500) + "1" + ")" * rng.randint(0, 1500)
    if choice == 1:
        return "(" * rng.randint(100, 3000) + "1"
    if choice == 2:
        return "9" * rng.randint(100, 6000) + " + 1"
    if choice == 3:
        return "".join(rng.choice("()[]{}=,;+-*/^%R1x.$ ") for _ in range(rng.randint(0, 60)))
    if choice == 4:
        return "\udcff" + "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 20))).replace("\n", "")
    if choice == 5:
        return f"R{rng.randint(1, 5)} * {rng.randint(0, 99)} / {rng.choice(['0', '2', 'R1'])}"
    if choice == 6:
        return "2**" * rng.randint(1, 6) + "99"
    if choice == 7:
        return f"{rng.randint(0, 10**6)} - {rng.random():.4f}"
    if choice == 8:
        return "R" + "7" * rng.randint(4000, 6000) + " + 1"
    if choice == 9:
        return "x" * rng.randint(1, 6000)
    if choice == 10:
        return "1e" + str(rng.randint(300, 10**6))
    return "Calculator(" * rng.randint(1, 50) + "1"


def _action(rng: random.Random) -> str:
    if rng.random() < 0.5:  # well formed, so that the tools run on fuzzed arguments
        return f"R{rng.randint(1, 3)} = {rng.choice(MATHS.tool_names)}({_argument(rng)})"
    outputs = rng.choice(["R1", "R2", "R3", "R1, R2", "R0", "R" + "5" * rng.randint(4400, 6000), "", "x", "R-1",
                          "R" + "1" * rng.randint(1, 30)])
    tool = rng.choice([*MATHS.tool_names, "Nope", "", "Calculator(", "R1"])
    args = _argument(rng)
    shape = rng.randrange(6)
    if shape == 0:
        return f"{outputs} = {tool}({args}"  # unclosed
    if shape == 1:
        return f"{tool}({args})"  # no outputs
    if shape == 2:
        return f"{outputs} = {tool}({args}) = {rng.randint(0, 9)}"
    return f"{outputs} = {tool}({args})"


def _grounder_reply(task_number: int) -> tuple[str, int]:
    rng = random.Random(task_number)
    count = rng.randint(1, 4)
    return "; ".join(_action(rng) for _ in range(count)), count


def test_ten_thousand_fuzzed_actions_lose_no_batch():
    toolbox = fuzz_toolbox()
    planner = ScriptedGenerator(lambda text: "Subgoal 1: Compute the value.")
    actions = 0
    task_number = 0

    def grounder_function(text: str) -> str:
        nonlocal actions
        reply, count = _grounder_reply(int(re.findall(r"fuzz task (\d+)\.", text)[-1]))
        actions += count  # every fuzzed action handed to the loop
        return reply

    grounder = ScriptedGenerator(grounder_function)
    statuses: dict[str, int] = {}
    for batch in range(BATCHES):
        formulation = "onetime" if batch % 2 else "iterative"
        agent = Agent(planner, grounder, toolbox, domain="maths", formulation=formulation, max_steps=2)
        tasks = []
        for _ in range(TASKS_PER_BATCH):
            tasks.append((f"t{task_number}", f"fuzz task {task_number}."))
            task_number += 1
        episodes = agent.run(tasks)  # must not raise
        assert [e.id for e in episodes] == [task_id for task_id, _ in tasks]
        for episode in episodes:
            assert episode.done and episode.status in STATUSES, (episode.id, episode.status)
            if episode.status != "finished" and episode.status != "step_limit":
                assert episode.error, episode.id
            statuses[episode.status] = statuses.get(episode.status, 0) + 1
    print(f"{actions} fuzzed actions in {BATCHES} batches of {TASKS_PER_BATCH} tasks: {statuses}")
    assert actions >= 10_000, actions
    assert sum(statuses.values()) == BATCHES * TASKS_PER_BATCH
    assert statuses.get("parse_error", 0) > 0 and statuses.get("tool_error", 0) > 0
