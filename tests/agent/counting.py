"""Counting tasks for the loop tests: scripted planner and grounder replies as functions of the prompt,
and what two runs of the same tasks must agree on."""

import re

# Task "t<i>-<steps>" adds one <steps> times; "bad" gets an unreadable plan, "div" divides by zero,
# "loop" never stops (step limit), "unknown" names a tool maths lacks.
TASKS = [(f"t{i}-{1 + i % 4}", f"t{i}-{1 + i % 4}: add one {1 + i % 4} times") for i in range(16)] + [
    ("bad", "bad: nothing"), ("div", "div: divide"), ("loop", "loop: forever"), ("unknown", "unknown: look up")]


def planner_reply(prompt: str) -> str:
    name = prompt.split("Task: ")[1].split(":")[0]
    done = len(re.findall(r"Should we stop planning\?", prompt))
    if name == "bad":
        return "I would rather not"
    if name == "div":
        return "Subgoal 1: Divide." if done == 0 else "Yes, I will stop planning."
    if name == "unknown":
        return "Subgoal 1: Look up."
    steps = 10**6 if name == "loop" else int(name.split("-")[1])
    if done >= steps:
        return "Yes, I will stop planning."
    prefix = "" if done == 0 else "No, I will keep planning. "
    return f"{prefix}Subgoal {done + 1}: Add one to the running total."


def grounder_reply(prompt: str) -> str:
    subgoal = re.findall(r"Subgoal to be grounded: Subgoal (\d+): (.*)\n", prompt)[-1]
    k, text = int(subgoal[0]), subgoal[1]
    if text.startswith("Divide"):
        return "R1 = Calculator(1 / 0)"
    if text.startswith("Look up"):
        return "R1 = Search(cats)"
    return "R1 = Calculator(0 + 1)" if k == 1 else f"R{k} = Calculator(R{k - 1} + 1)"


def comparable(episode) -> dict:
    record = episode.to_record()
    record.pop("seconds", None)
    for step in record["steps"]:
        for key in [k for k in step if k.endswith("seconds")]:
            step.pop(key)
        for call in step.get("calls", []):
            call.pop("seconds", None)
    return record
