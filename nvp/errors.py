"""Errors meant for people: each names the input that was wrong and what to do.

The ``nvp`` command catches :class:`NvpError` and prints its message (one line,
no traceback) with a non-zero exit code; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from pathlib import Path


class NvpError(Exception):
    """Base class of the errors that ``nvp`` reports without a traceback.

    Args:
        message: what is wrong and, where it helps, what to do about it.
        path: the file or folder the problem is about; prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(NvpError):
    """An input file is missing, unreadable, or unsuitable (no face, no audio, too short)."""


class ConfigError(NvpError):
    """A configuration key or value is invalid."""


class MissingDependencyError(NvpError):
    """An optional package or weight file that the chosen setting needs is absent."""
