"""The one progress channel: stages call ``progress(stage, detail)`` with a finished step's line.

The CLI passes ``render.stage_printer(console)``; library users pass their own callable
(a logger, a list's ``append``) or nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, str], None]


def silent(stage: str, detail: str) -> None:
    """Progress that goes nowhere: the default of every stage."""


def channel(progress: Progress | None) -> Progress:
    return progress or silent
