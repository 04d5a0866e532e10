"""The one progress channel: stages call ``progress(stage, detail)`` with a finished step's line.

The CLI passes ``render.stage_printer(console)``; library users pass their own callable
(a logger, a list's ``append``) or nothing.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator

Progress = Callable[[str, str], None]


def silent(stage: str, detail: str) -> None:
    """Progress that goes nowhere: the default of every stage."""


def channel(progress: Progress | None) -> Progress:
    return progress or silent


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep the tools ghostexport calls (ONNX Runtime's quantization, NNCF) off this channel's output.

    They log at INFO/WARNING (some set their own logger levels) and print progress chatter; the
    stage's own line says what was done.
    """
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
