"""What the command-line entry points share (``data.*``, ``eval.*.run_eval``): their ``--help`` shape."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the description as written and shows every flag with its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # a help text that already says "(default: ...)" is not told it twice
        if (action.option_strings and action.default is not argparse.SUPPRESS and "%(default)" not in text
                and "(default:" not in text):
            text += " (default: %(default)s)"
        return text.strip()

    def _format_action(self, action: argparse.Action) -> str:
        if not (action.help or "").strip() and action.option_strings:
            action.help = "(default: %(default)s)"  # argparse shows no help line for an action without help text
        return super()._format_action(action)
