"""What every loop transformation returns, and how it declines."""
from __future__ import annotations

from typing import NamedTuple

from ...ir import nodes as N
from ..base import Declined


class Applied(NamedTuple):
    """The rewritten IR and what z3 proved about it (one line per obligation group), so
    a caller can log or report why the rewrite is trusted: ``node, proved = split(...)``."""

    node: N.Stmt
    proved: tuple[str, ...]


def decline(who: str, reason: str, loop: N.Node | None = None):
    raise Declined(f"loops.{who}", reason, getattr(loop, "span", None))
