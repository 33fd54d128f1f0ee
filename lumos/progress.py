"""Progress bars that keep logs readable: live in a terminal, a few redraws a minute in a file.

Every CLI (conversion, training, evaluation) makes its bars here. When the bar's stream is a
terminal this is plain ``tqdm``; when it is a file or a pipe (``./quickstart.sh > log``, CI), a
bar writes a plain line at most every :data:`LOG_INTERVAL` seconds (``set_postfix`` and
``set_description`` no longer force a redraw of their own), so a log holds a few readable lines
a minute instead of a carriage-return redraw per step.
"""

from __future__ import annotations

import functools
import sys
from typing import IO, Any

LOG_INTERVAL = 20.0  # seconds between redraws when the output is not a terminal


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Any = None, **options: Any):
    """``tqdm(iterable, **options)``, throttled to :data:`LOG_INTERVAL` when the output is not a terminal."""
    from tqdm.auto import tqdm

    if is_terminal(options.get("file")):
        return tqdm(iterable, **options)
    options.setdefault("mininterval", LOG_INTERVAL)
    options.setdefault("ncols", 100)  # a file has no width to adapt to
    options.setdefault("ascii", True)
    return _log_bar_class()(iterable, **options)


@functools.lru_cache(maxsize=None)
def _log_bar_class():
    from tqdm import tqdm

    class LogBar(tqdm):
        """A bar for logs: each redraw is a line of its own, and postfix or description changes wait for the
        next throttled redraw instead of forcing one."""

        monitor_interval = 0  # no monitor thread: it would add a redraw of its own beside the throttled one

        def display(self, msg=None, pos=None):  # noqa: D102 - tqdm's signature
            text = (self.__str__() if msg is None else msg).strip()
            if text:
                self.fp.write(text + "\n")
                self.fp.flush()
            return True

        def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):  # noqa: D102 - tqdm's signature
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def set_postfix_str(self, s="", refresh=False):  # noqa: D102
            super().set_postfix_str(s, refresh=False)

        def set_description(self, desc=None, refresh=False):  # noqa: D102
            super().set_description(desc, refresh=False)

    return LogBar


__all__ = ["LOG_INTERVAL", "is_terminal", "progress_bar"]
