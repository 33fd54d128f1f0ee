"""The trajectory report: a real evaluation run (the gsm run_eval CLI with scripted modules) rendered
into one self-contained page, model text escaped, two runs compared; and in a real browser
(headless Chromium), the page's filters working and nothing a model wrote running."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lumos.report import (RIGHT, WRONG, accuracy_by_subgoals, load_run, main, outcome, primary_metric, render,
                          subgoal_count, write_report)

# Model text (and a task) carrying markup that would run or load something if it reached the page unescaped.
HOSTILE_TASK = ("Mia has <b>5</b> pens <script>document.title='pwned'</script>"
                "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">. How many pens?")
HOSTILE_SUBGOAL = "Subgoal 1: Count the </code></pre><script>document.body.setAttribute('data-pwned','2')</script> pens."
HOSTILE_ACTION = "R1 = Calculator(5 <img src=y onerror=\"document.body.setAttribute('data-pwned','3')\">)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root, scripts):
    """Two real runs of ``python -m eval.gsm.run_eval`` over the same four tasks.

    Run a: janet and robe right, the hostile task a tool error, an unforeseen question a generation
    error. Run b differs only in robe's second grounding (``20 + R1``: finished but wrong).
    """
    root = tmp_path_factory.mktemp("report")
    tasks = [*scripts.MATHS_TASKS, ("evil", HOSTILE_TASK, "5"), ("unforeseen", "Unforeseen question?", "5")]
    data = root / "data"
    data.mkdir()
    (data / "test.jsonl").write_text("".join(json.dumps({"id": i, "question": t, "answer": f"...\n#### {a}"}) + "\n"
                                             for i, t, a in tasks))
    planner = scripts.MATHS_PLANNER + [(r"Task: Mia.*None\.\n<\|assistant\|>\n$", HOSTILE_SUBGOAL)]
    grounder = scripts.MATHS_GROUNDER + [(r"Subgoal to be grounded: Subgoal 1: Count the", HOSTILE_ACTION)]
    other = [(pattern, reply.replace("2 + R1", "20 + R1")) for pattern, reply in grounder]
    outputs = {}
    for name, rules in (("a", grounder), ("b", other)):
        done = subprocess.run(
            [sys.executable, "-m", "eval.gsm.run_eval", "--data_dir", str(data), "--save_dir", str(root / name),
             "--planner", scripts.write_rules(root / "planner.json", planner),
             "--grounder", scripts.write_rules(root / f"grounder_{name}.json", rules), "--eval_batch_size", "2"],
            cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs[name] = done.stdout
    return root / "a", root / "b", outputs


def test_run_eval_ends_by_printing_where_its_outputs_are(runs):
    first, _, outputs = runs
    for name in ("predictions.jsonl", "metrics.json", "report.html"):
        assert str(first / name) in outputs["a"]
        assert (first / name).is_file()


def test_outcomes_and_subgoal_counts_of_a_real_run(runs):
    run = load_run(runs[0])
    by_id = run.by_id()
    assert set(by_id) == {"janet", "robe", "evil", "unforeseen"} and not run.bad_lines
    assert primary_metric(run.records) == run.metric == "accuracy"
    assert {key: outcome(record, run.metric) for key, record in by_id.items()} == {
        "janet": RIGHT, "robe": RIGHT, "evil": WRONG, "unforeseen": WRONG}
    assert by_id["evil"]["status"] == "tool_error" and by_id["unforeseen"]["status"] == "generation_error"
    assert subgoal_count(by_id["janet"]) == 2 and subgoal_count(by_id["unforeseen"]) == 0
    assert accuracy_by_subgoals(run.records, run.metric) == [(0, 1, 0), (1, 1, 0), (2, 2, 2)]


def test_page_is_self_contained_and_escapes_model_text(runs):
    page = (runs[0] / "report.html").read_text(encoding="utf-8")
    # no resource from anywhere: no src/href to a file or the network, and a policy that forbids them
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", page)
    assert "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';" in page
    assert page.count("<script>") == 1  # ours, and nothing the model wrote
    assert "<img" not in page and "</code></pre><script>" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "Calculator" in page and "Calculate how many eggs she sells." in page
    for text in ("Janet&#x27;s ducks lay 16 eggs", "generation_error", "tool_error", "by number of subgoals"):
        assert text in page


def test_two_runs_show_the_examples_whose_outcome_differs_side_by_side(runs):
    first, second, _ = runs
    path = write_report(first, second)
    assert path == first / "compare_b.html"
    page = path.read_text(encoding="utf-8")
    differing = re.findall(r'<tr class="diff-row" data-id="([^"]+)"', page)
    assert differing == ["robe"]
    assert "1 of 4 common examples differ in outcome or status: right → wrong: 1" in page
    row = page[page.index('data-id="robe"'):]
    assert row.index("2 + R1") < row.index("20 + R1")  # run a on the left, run b on the right


def test_cli_writes_where_asked_and_refuses_a_folder_without_predictions(runs, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main([str(runs[0]), "--out", str(out)]) == 0
    assert out.is_file() and f"report: {out}" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "has no predictions.jsonl" in error


def test_a_torn_last_line_is_reported_not_fatal(runs, tmp_path):
    torn = tmp_path / "torn"
    torn.mkdir()
    lines = (runs[0] / "predictions.jsonl").read_text().splitlines(keepends=True)
    (torn / "predictions.jsonl").write_text(lines[0] + lines[1][:30])
    run = load_run(torn)
    assert [record["id"] for record in run.records] == [json.loads(lines[0])["id"]] and len(run.bad_lines) == 1
    assert "1 unreadable line(s)" in render(run)


# --------------------------------------------------------------------------- in a real browser


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    reason = "no headless Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("LUMOS_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


class _Dom(HTMLParser):
    """The example rows (attributes, text), the body's attributes and the title of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.body: dict = {}
        self.title = ""
        self.tags: list[str] = []
        self._in_title = False
        self._count_text: list[str] = []
        self._in_count = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = attributes
        if tag == "title":
            self._in_title = True
        if tag == "div" and "example" in (attributes.get("class") or "").split():
            self.rows.append(attributes)
        if attributes.get("id") == "f-count":
            self._in_count = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "span":
            self._in_count = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_count:
            self._count_text.append(data)

    @property
    def count_text(self) -> str:
        return "".join(self._count_text)


def _dump_dom(page: Path, fragment: str, tmp_path: Path) -> _Dom:
    done = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


def test_browser_renders_the_report_and_its_filters_work(runs, tmp_path):
    page = runs[0] / "report.html"
    everything = _dump_dom(page, "", tmp_path)
    assert len(everything.rows) == 4 and not any("hidden" in row for row in everything.rows)
    assert everything.count_text == "4 of 4 shown" and everything.body.get("data-shown") == "4"
    # the script ran under the page's own policy, and nothing a model wrote did
    assert everything.title.startswith("Lumos report: a") and "pwned" not in everything.title
    assert "data-pwned" not in everything.body and "img" not in everything.tags

    wrong = _dump_dom(page, "#outcome=wrong", tmp_path)
    shown = {row["data-status"] for row in wrong.rows if "hidden" not in row}
    assert wrong.count_text == "2 of 4 shown" and shown == {"tool_error", "generation_error"}

    both = _dump_dom(page, "#status=finished&outcome=wrong", tmp_path)
    assert both.count_text == "0 of 4 shown" and all("hidden" in row for row in both.rows)

    finished = _dump_dom(page, "#status=finished&outcome=right", tmp_path)
    assert [row["data-outcome"] for row in finished.rows if "hidden" not in row] == [RIGHT, RIGHT]


def test_browser_renders_the_comparison_of_two_runs(runs, tmp_path):
    first, second, _ = runs
    dom = _dump_dom(write_report(first, second), "#status=finished", tmp_path)
    assert dom.count_text == "2 of 4 shown"
    assert "data-pwned" not in dom.body and "img" not in dom.tags
