"""Errors users see. Every error about user input carries a file:line:col position."""
from __future__ import annotations


class XpilerError(Exception):
    """Base of all errors the CLI reports without a traceback."""


class SourceError(XpilerError):
    """A problem in a user's source file, reported as ``file:line:col: error: ...``."""

    def __init__(self, message: str, span=None, construct: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.construct = construct

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        return f"{where}error: {self.message}"
