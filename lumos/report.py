"""One self-contained HTML page per evaluation run: metrics, outcomes and every trajectory.

    python -m lumos.report results/gsm                        # -> results/gsm/report.html
    python -m lumos.report results/gsm results/gsm_other      # + the examples whose outcome differs, side by side
    python -m lumos.report results/gsm --out /tmp/gsm.html

A save_dir is what ``eval/<bench>/run_eval`` writes: ``predictions.jsonl`` (one Episode record,
see :mod:`lumos.episode`, plus ``answer`` and ``scores`` per example), ``metrics.json`` and
``run.json``. The page needs nothing but a browser: no network, no external file. It shows the
metrics and exit-status counts, accuracy by number of subgoals, and per example the task, each
subgoal with its grounded actions and tool calls (arguments, results or errors, timings), the
gold answer and the scores; filters by status and by right/wrong run in plain JavaScript inside
the page, and can be set from the address (``report.html#status=parse_error&outcome=wrong``).

All model text is untrusted: every string is HTML-escaped, and the page's Content-Security-Policy
allows no resource but its own style and script (by hash), so nothing a model writes can run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

PREDICTIONS, METRICS, RUN_INFO = "predictions.jsonl", "metrics.json", "run.json"
REPORT = "report.html"
# The score that decides right/wrong: the first of these a run has, else its first score name.
PRIMARY_SCORES = ("accuracy", "em", "success", "task_sr", "judge_accuracy")
RIGHT, WRONG, UNSCORED = "right", "wrong", "unscored"
# Episode fields shown in their own place; any other field of a record is listed as data.
_SHOWN = {"id", "task", "formulation", "status", "error", "prediction", "steps", "seconds", "answer", "scores"}


class ReportError(ValueError):
    """A save_dir that holds no predictions to report on."""


@dataclass
class Run:
    """One evaluation's outputs, read back."""

    save_dir: Path
    records: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    bad_lines: list[str] = field(default_factory=list)  # unreadable lines of predictions.jsonl (a torn tail)

    @property
    def name(self) -> str:
        return self.save_dir.resolve().name

    @property
    def metric(self) -> str | None:
        return primary_metric(self.records)

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {str(record.get("id")): record for record in self.records}


def load_run(save_dir: str | Path, only: Iterable[str] | None = None) -> Run:
    """Read ``predictions.jsonl`` (a later record of an id replaces an earlier one), metrics and config.

    ``only``: the ids to keep (those the evaluation that wrote ``metrics.json`` covered).
    """
    from lumos.jsonl import BadRecord, read_records

    save_dir = Path(save_dir)
    path = save_dir / PREDICTIONS
    if not path.is_file():
        raise ReportError(f"{save_dir} has no {PREDICTIONS}: give the --save_dir of an evaluation run")
    records: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for item in read_records(path):
        if isinstance(item, BadRecord):
            bad.append(str(item))
        else:
            records[str(item.data.get("id", f"line_{item.line_no}"))] = item.data
    if only is not None:
        keep = {str(key) for key in only}
        records = {key: record for key, record in records.items() if key in keep}
    metrics = _read_json(save_dir / METRICS)
    config = _read_json(save_dir / RUN_INFO).get("config", {})
    return Run(save_dir, list(records.values()), metrics if isinstance(metrics, dict) else {},
               config if isinstance(config, dict) else {}, bad)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- outcomes


def primary_metric(records: Sequence[dict[str, Any]]) -> str | None:
    names = {name for record in records for name in (record.get("scores") or {})}
    for name in PRIMARY_SCORES:
        if name in names:
            return name
    return min(names) if names else None


def score_of(record: dict[str, Any], metric: str | None) -> float | None:
    value = (record.get("scores") or {}).get(metric) if metric else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def outcome(record: dict[str, Any], metric: str | None) -> str:
    """``right`` when the primary score is full marks, ``wrong`` otherwise, ``unscored`` without one."""
    score = score_of(record, metric)
    if score is None:
        return UNSCORED
    return RIGHT if score >= 1.0 - 1e-9 else WRONG


def subgoal_count(record: dict[str, Any]) -> int:
    """Subgoals the planner produced (0 for cot/direct answers, which have none)."""
    return sum(1 for step in record.get("steps") or [] if isinstance(step, dict) and step.get("subgoal"))


def accuracy_by_subgoals(records: Sequence[dict[str, Any]], metric: str | None) -> list[tuple[int, int, int]]:
    """``(number of subgoals, examples, right)`` rows, fewest subgoals first."""
    total: Counter[int] = Counter()
    right: Counter[int] = Counter()
    for record in records:
        count = subgoal_count(record)
        total[count] += 1
        right[count] += outcome(record, metric) == RIGHT
    return [(count, total[count], right[count]) for count in sorted(total)]


def status_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(str(record.get("status")) for record in records).items()))


def text_summary(run: Run) -> str:
    """Plain-text tables (outcome by number of subgoals) for a terminal or a log."""
    metric = run.metric
    lines = [f"{'subgoals':>8}  {'examples':>8}  {'right':>6}  {metric or 'score':>8}"]
    for count, examples, right in accuracy_by_subgoals(run.records, metric):
        lines.append(f"{count:>8}  {examples:>8}  {right:>6}  {right / examples:>8.3f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- rendering


def _e(value: Any) -> str:
    """Any value as escaped HTML text (``None`` as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _metrics_section(run: Run) -> str:
    metric = run.metric
    scalar = [(key, value) for key, value in run.metrics.items()
              if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    nested = {key: value for key, value in run.metrics.items() if isinstance(value, (dict, list)) and key != "status"}
    records = run.records
    right = sum(outcome(record, metric) == RIGHT for record in records)
    parts = [f'<p class="headline">{len(records)} examples; {right} right by <code>{_e(metric or "no score")}</code>'
             f" ({right / len(records):.1%})</p>" if records else "<p>no examples</p>"]
    if scalar:
        parts.append("<h3>metrics.json</h3>" + _table(["metric", "value"], [[_e(k), _number(v)] for k, v in scalar],
                                                      "metrics"))
    if nested:
        parts.append("<details><summary>more metrics</summary><pre>"
                     + _e(json.dumps(nested, indent=2, default=str)) + "</pre></details>")
    statuses = status_counts(records)
    parts.append("<h3>exit status</h3>" + _table(
        ["status", "examples", "right"],
        [[f'<a href="#status={_e(status)}">{_e(status)}</a>', str(count),
          str(sum(outcome(r, metric) == RIGHT for r in records if str(r.get("status")) == status))]
         for status, count in statuses.items()], "status"))
    parts.append("<h3>by number of subgoals</h3>" + _table(
        ["subgoals", "examples", "right", _e(metric or "score")],
        [[str(count), str(examples), str(good), f"{good / examples:.3f}"]
         for count, examples, good in accuracy_by_subgoals(records, metric)], "subgoals"))
    if run.bad_lines:
        parts.append(f'<p class="warn">{len(run.bad_lines)} unreadable line(s) in {PREDICTIONS} were skipped: '
                     + "; ".join(_e(line) for line in run.bad_lines[:5]) + "</p>")
    if run.config:
        parts.append("<details><summary>run configuration (run.json)</summary><pre>"
                     + _e(json.dumps(run.config, indent=2, default=str)) + "</pre></details>")
    return "".join(parts)


def _call_row(call: Any) -> list[str]:
    if not isinstance(call, dict):
        return [_e(call), "", "", "", ""]
    outcome_cell = (f'<span class="error">error: {_e(call.get("error"))}</span>' if call.get("error")
                    else f'<span class="result">{_e(call.get("result"))}</span>')
    outputs = call.get("outputs")
    outputs = ", ".join(str(o) for o in outputs) if isinstance(outputs, list) else outputs
    return [f"<code>{_e(outputs)}</code>", f"<code>{_e(call.get('tool'))}</code>", f"<code>{_e(call.get('args'))}</code>",
            outcome_cell, _seconds(call.get("seconds"))]


def _steps(record: dict[str, Any]) -> str:
    steps = record.get("steps") or []
    if not steps:
        return '<p class="muted">no steps</p>'
    parts = ['<ol class="steps">']
    for step in steps:
        if not isinstance(step, dict):
            parts.append(f"<li><pre>{_e(step)}</pre></li>")
            continue
        subgoal = step.get("subgoal")
        head = (f'<span class="subgoal">{_e(subgoal)}</span>' if subgoal
                else '<span class="muted">(no subgoal)</span>')
        parts.append(f'<li><div class="step-head">{head} <span class="time">plan {_seconds(step.get("plan_seconds"))}'
                     f' · ground {_seconds(step.get("ground_seconds"))}</span></div>')
        if step.get("plan_reply") is not None and step.get("plan_reply") != subgoal:
            parts.append(f'<div class="reply"><span class="label">planner</span> <code>{_e(step["plan_reply"])}</code>'
                         "</div>")
        if step.get("grounding") is not None:
            parts.append(f'<div class="reply"><span class="label">grounded</span> <code>{_e(step["grounding"])}</code>'
                         "</div>")
        calls = step.get("calls") or []
        if calls:
            parts.append(_table(["outputs", "tool", "arguments", "result / error", "time"],
                                [_call_row(call) for call in calls], "calls"))
        extra = {k: v for k, v in step.items()
                 if k not in {"index", "subgoal", "plan_reply", "grounding", "calls", "plan_seconds",
                              "ground_seconds", "result"}}
        if extra:
            parts.append("<pre class=\"extra\">" + _e(json.dumps(extra, indent=1, default=str)) + "</pre>")
        parts.append("</li>")
    parts.append("</ol>")
    return "".join(parts)


def _trajectory(record: dict[str, Any], metric: str | None) -> str:
    scores = record.get("scores") or {}
    score_text = ", ".join(f"{_e(k)} {_number(v)}" for k, v in scores.items()) if isinstance(scores, dict) else _e(scores)
    parts = [
        f'<div class="task"><span class="label">task</span> {_e(record.get("task"))}</div>',
        _steps(record),
        '<dl class="facts">',
        f"<dt>prediction</dt><dd><code>{_e(record.get('prediction'))}</code></dd>",
        f"<dt>gold answer</dt><dd><code>{_e(record.get('answer'))}</code></dd>",
        f"<dt>scores</dt><dd>{score_text}</dd>",
        f"<dt>status</dt><dd>{_e(record.get('status'))} · {_seconds(record.get('seconds'))}</dd>",
    ]
    if record.get("error"):
        parts.append(f'<dt>error</dt><dd class="error">{_e(record.get("error"))}</dd>')
    parts.append("</dl>")
    extra = {key: value for key, value in record.items() if key not in _SHOWN}
    if extra:
        parts.append("<details><summary>other fields</summary><pre>"
                     + _e(json.dumps(extra, indent=1, default=str)) + "</pre></details>")
    return "".join(parts)


def _example(record: dict[str, Any], metric: str | None, index: int) -> str:
    result = outcome(record, metric)
    task = str(record.get("task") or "")
    short = task if len(task) <= 140 else task[:137] + "..."
    return (f'<div class="example {result}" data-status="{_e(record.get("status"))}" data-outcome="{result}" '
            f'id="ex-{index}"><details><summary><span class="badge {result}">{result}</span> '
            f'<span class="status">{_e(record.get("status"))}</span> <span class="id">{_e(record.get("id"))}</span> '
            f'<span class="short">{_e(short)}</span></summary>{_trajectory(record, metric)}</details></div>')


def _filters(run: Run) -> str:
    statuses = "".join(f'<option value="{_e(s)}">{_e(s)} ({n})</option>' for s, n in status_counts(run.records).items())
    outcomes = Counter(outcome(record, run.metric) for record in run.records)
    choices = "".join(f'<option value="{o}">{o} ({outcomes[o]})</option>' for o in (RIGHT, WRONG, UNSCORED) if outcomes[o])
    return ('<div class="filters">'
            f'<label>status <select id="f-status"><option value="">all</option>{statuses}</select></label> '
            f'<label>outcome <select id="f-outcome"><option value="">all</option>{choices}</select></label> '
            '<label>task contains <input id="f-text" type="search"></label> '
            '<button type="button" id="f-open">open shown</button> <button type="button" id="f-close">close all</button> '
            f'<span id="f-count">{len(run.records)} of {len(run.records)} shown</span></div>')


def _comparison(first: Run, second: Run) -> str:
    a, b = first.by_id(), second.by_id()
    metric_a, metric_b = first.metric, second.metric
    common = [key for key in a if key in b]
    changed = [key for key in common
               if (outcome(a[key], metric_a), a[key].get("status")) != (outcome(b[key], metric_b), b[key].get("status"))]
    flips = Counter((outcome(a[key], metric_a), outcome(b[key], metric_b)) for key in changed)
    summary = _table(
        ["", _e(first.name), _e(second.name)],
        [["examples", str(len(a)), str(len(b))],
         ["right", str(sum(outcome(r, metric_a) == RIGHT for r in a.values())),
          str(sum(outcome(r, metric_b) == RIGHT for r in b.values()))],
         ["only in this run", str(len(set(a) - set(b))), str(len(set(b) - set(a)))]], "compare-summary")
    flip_text = ", ".join(f"{_e(x)} → {_e(y)}: {n}" for (x, y), n in sorted(flips.items()))
    rows = []
    for key in changed:
        rows.append(
            f'<tr class="diff-row" data-id="{_e(key)}"><td colspan="2" class="diff-id"><code>{_e(key)}</code></td></tr>'
            f'<tr class="diff-row-body"><td><div class="side {outcome(a[key], metric_a)}">'
            f'<span class="badge {outcome(a[key], metric_a)}">{outcome(a[key], metric_a)}</span> '
            f'{_e(a[key].get("status"))}{_trajectory(a[key], metric_a)}</div></td>'
            f'<td><div class="side {outcome(b[key], metric_b)}"><span class="badge {outcome(b[key], metric_b)}">'
            f'{outcome(b[key], metric_b)}</span> {_e(b[key].get("status"))}{_trajectory(b[key], metric_b)}</div></td></tr>')
    table = (f'<table class="diff"><thead><tr><th>{_e(first.name)} <small>{_e(first.save_dir)}</small></th>'
             f'<th>{_e(second.name)} <small>{_e(second.save_dir)}</small></th></tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>') if rows else "<p>no example changed its outcome</p>"
    return (f'<section id="compare"><h2>Compared with {_e(second.name)}</h2>{summary}'
            f'<p id="diff-count">{len(changed)} of {len(common)} common examples differ in outcome or status'
            f'{": " + flip_text if flip_text else ""}</p>{table}</section>')


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.3em 0 1em}th,td{border:1px solid #ddd;padding:2px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}code,pre{font:12px/1.4 ui-monospace,monospace;white-space:pre-wrap;
word-break:break-word}.filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;
z-index:1}.filters label{margin-right:1em}.example{border-left:4px solid #bbb;margin:.25em 0;padding:.1em .5em}
.example.right{border-color:#2a7}.example.wrong{border-color:#c33}.example summary{cursor:pointer}
.badge{display:inline-block;min-width:4.5em;text-align:center;border-radius:3px;color:#fff;background:#888;
font-size:12px}.badge.right{background:#2a7}.badge.wrong{background:#c33}.status{color:#555;margin:0 .5em}
.id{color:#888;font-size:12px}.short{margin-left:.5em}.label{color:#777;font-size:12px;text-transform:uppercase;
margin-right:.3em}.subgoal{font-weight:600}.time{color:#888;font-size:12px;margin-left:.5em}.error{color:#b00}
.result{color:#060}.muted{color:#999}.warn{color:#a60}.steps li{margin:.4em 0}.facts dt{float:left;clear:left;
width:7em;color:#777}.facts dd{margin-left:7.5em}.task{margin:.5em 0}.diff td{width:50%}.diff-id{background:#f8f8f8}
.side{padding:.3em}.headline{font-size:1.1em}
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('#examples .example'));
  var status = document.getElementById('f-status'), result = document.getElementById('f-outcome');
  var text = document.getElementById('f-text'), count = document.getElementById('f-count');
  function hashParams() {
    var params = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (part) {
      var pair = part.split('=');
      if (pair[0]) params[decodeURIComponent(pair[0])] = decodeURIComponent(pair.slice(1).join('=') || '');
    });
    return params;
  }
  function choose(select, value) {
    var known = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    select.value = known ? value : '';
  }
  function apply() {
    var wantStatus = status.value, wantOutcome = result.value, needle = text.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var task = row.querySelector('.task');
      var ok = (!wantStatus || row.getAttribute('data-status') === wantStatus)
        && (!wantOutcome || row.getAttribute('data-outcome') === wantOutcome)
        && (!needle || (task && task.textContent.toLowerCase().indexOf(needle) >= 0));
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    count.textContent = shown + ' of ' + rows.length + ' shown';
    document.body.setAttribute('data-shown', String(shown));
  }
  function fromHash() {
    var params = hashParams();
    choose(status, params.status || '');
    choose(result, params.outcome || '');
    text.value = params.q || '';
    apply();
  }
  function toHash() {
    var parts = [];
    if (status.value) parts.push('status=' + encodeURIComponent(status.value));
    if (result.value) parts.push('outcome=' + encodeURIComponent(result.value));
    if (text.value) parts.push('q=' + encodeURIComponent(text.value));
    history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname + location.search);
    apply();
  }
  [status, result].forEach(function (el) { el.addEventListener('change', toHash); });
  text.addEventListener('input', toHash);
  window.addEventListener('hashchange', fromHash);
  document.getElementById('f-open').addEventListener('click', function () {
    rows.forEach(function (row) { if (!row.hidden) row.querySelector('details').open = true; });
  });
  document.getElementById('f-close').addEventListener('click', function () {
    rows.forEach(function (row) { row.querySelector('details').open = false; });
  });
  fromHash();
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render(run: Run, other: Run | None = None) -> str:
    """The whole page as one string."""
    benchmark = run.metrics.get("benchmark") or run.config.get("benchmark") or ""
    title = f"Lumos report: {run.name}" + (f" ({benchmark})" if benchmark else "")
    if other is not None:
        title += f" vs {other.name}"
    policy = (f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)}; "
              "img-src 'none'; form-action 'none'; base-uri 'none'")
    examples = "".join(_example(record, run.metric, index) for index, record in enumerate(run.records))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=\"muted\">{_e(run.save_dir.resolve())}</p>"
        f'<section id="summary"><h2>Summary</h2>{_metrics_section(run)}</section>'
        + (_comparison(run, other) if other is not None else "")
        + f'<section id="examples"><h2>Examples</h2>{_filters(run)}{examples}</section>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(save_dir: str | Path, other: str | Path | None = None, out: str | Path | None = None,
                 only: Iterable[str] | None = None) -> Path:
    """Write the page for ``save_dir`` (compared with ``other`` when given); returns its path.

    ``only``: the example ids to show (default: every record of ``predictions.jsonl``).
    """
    run = load_run(save_dir, only)
    second = load_run(other) if other is not None else None
    if out is None:
        out = run.save_dir / (REPORT if second is None else f"compare_{second.name}.html")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".tmp")
    staging.write_text(render(run, second), encoding="utf-8")
    staging.replace(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lumos.report", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("save_dir", help="an evaluation's --save_dir (holding predictions.jsonl)")
    parser.add_argument("other", nargs="?", default=None,
                        help="a second save_dir: adds the examples whose outcome differs, side by side")
    parser.add_argument("--out", default=None, help="the HTML file to write (default: <save_dir>/report.html, "
                                                     "or <save_dir>/compare_<other>.html with two runs)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.save_dir, args.other, args.out)
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


__all__ = ["Run", "ReportError", "accuracy_by_subgoals", "load_run", "outcome", "primary_metric", "render",
           "subgoal_count", "text_summary", "write_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
