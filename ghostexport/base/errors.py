"""Errors that map onto the CLI's exit codes (docs/design.md): 1 gate failed, 2 bad input, 3 bug.

Library code raises these with a one-line message that names the problem and the fix;
the CLI only prints them. Anything else that escapes is a bug (exit 3).
"""

from __future__ import annotations

from typing import Any


class GhostexportError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 3


class UsageError(GhostexportError):
    """Unusable input: bad flag value, missing or corrupt file, provider not available."""

    exit_code = 2


class GateFailed(GhostexportError):
    """A numerical gate failed: the artifact is not good. ``result`` carries the figures."""

    exit_code = 1

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
