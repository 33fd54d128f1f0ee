"""What one task's run through the agent loop leaves behind: its trajectory and how it ended.

An :class:`Episode` is never ``None`` and never dropped: every task ends with one exit status
(``finished``, ``step_limit``, ``parse_error``, ``tool_error``, ``generation_error``), the error
text when there is one, and every subgoal, grounded action and tool call on the way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ExitStatus = Literal["running", "finished", "step_limit", "parse_error", "tool_error", "generation_error"]
EXIT_STATUSES = ("finished", "step_limit", "parse_error", "tool_error", "generation_error")


@dataclass
class ToolCall:
    """One executed action: ``R2 = Calculator(R1 * 2)`` with its result or its error."""

    action: str
    tool: str
    args: str
    outputs: list[str]
    result: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Step:
    """One subgoal: the planner's reply, the grounder's reply and the tool calls they led to.

    ``plan_seconds``/``ground_seconds`` are the wall-clock of the *batched* call that produced
    this step's reply (shared by every task of that batch).
    """

    index: int
    subgoal: str | None = None
    plan_reply: str | None = None
    grounding: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    plan_seconds: float = 0.0
    ground_seconds: float = 0.0

    @property
    def result(self) -> str | None:
        """The result of the subgoal's last action (what the planner is told)."""
        return self.calls[-1].result if self.calls else None


@dataclass
class Episode:
    """One task's whole run: its steps and how it ended; one JSON record in ``predictions.jsonl``.

    ``status`` is ``running`` until the loop ends it with an exit status: ``finished`` (the planner
    stopped, or an environment ended the episode), ``step_limit``, ``parse_error`` (a reply did not
    fit the format), ``tool_error`` (an action failed), ``generation_error`` (a model call failed);
    ``error`` then holds the reason. ``prediction`` is the last result (what is scored); ``seconds``
    the episode's wall-clock. ``to_record``/``from_record`` round-trip it through JSON.
    """

    id: str
    task: str
    formulation: str
    status: ExitStatus = "running"
    error: str | None = None
    prediction: str | None = None
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    # The released evaluation's own bookkeeping for this task (``--prompt_style original`` only):
    # {"subgoals": [...], "actions": [...], "results": {variable: value} or None once an action failed}.
    original: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.status != "running"

    def end(self, status: ExitStatus, error: str | None = None) -> None:
        self.status = status
        self.error = error

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["steps"] = [asdict(step) | {"result": step.result} for step in self.steps]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Episode":
        steps = []
        for raw in record.get("steps", []):
            raw = {key: value for key, value in raw.items() if key != "result"}
            raw["calls"] = [ToolCall(**call) for call in raw.get("calls", [])]
            steps.append(Step(**raw))
        fields = {key: record[key] for key in ("id", "task", "formulation", "status", "error", "prediction", "seconds",
                                               "original") if key in record}
        return cls(**fields, steps=steps)
