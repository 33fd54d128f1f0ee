"""Progress bars stay readable in logs: a few plain lines, not a redraw per step, when not in a terminal."""

from __future__ import annotations

import io

import lumos.progress as progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_file_a_bar_writes_plain_lines_only_every_interval(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL", 3600.0)
    log = io.StringIO()
    bar = progress.progress_bar(total=2000, desc="training", file=log)
    for step in range(2000):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")  # forced a redraw per step before
        bar.set_description("training")
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line for line in lines if line] == [lines[0], lines[-2]] and len(lines) <= 3
    assert lines[0].startswith("training:   0%") and "2000/2000" in lines[-2] and "loss=0.0005" in lines[-2]


def test_in_a_file_a_bar_over_time_writes_a_line_per_interval(monkeypatch):
    clock = iter(range(0, 10_000, 5))  # each tick of tqdm's clock: 5 seconds later
    monkeypatch.setattr(progress, "LOG_INTERVAL", 20.0)
    log = io.StringIO()
    bar = progress.progress_bar(total=100, file=log, desc="converting")
    bar._time = lambda: float(next(clock))
    bar.start_t = bar.last_print_t = bar._time()
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = [line for line in log.getvalue().splitlines() if line]
    assert 4 <= len(lines) <= 30  # several hundred seconds of updates: a line per 20 s at most, not 100


def test_in_a_terminal_it_is_the_usual_live_bar():
    screen = _Terminal()
    bar = progress.progress_bar(total=5, file=screen, mininterval=0)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert screen.getvalue().count("\r") >= 5
    assert progress.is_terminal(screen) and not progress.is_terminal(io.StringIO())
