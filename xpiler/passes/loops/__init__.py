"""Loop transformations over the IR, each legal-checked and proved with z3.

Every function is pure: it takes IR nodes and parameters and returns
``Applied(node, proved)`` -- the replacement statement and one line per fact z3 proved --
or raises ``Declined`` (xpiler.passes.base) whose reason names what stopped it (the
dependence, with a witness pair of iterations; the loop that is not canonical; the
obligation z3 could not prove). The caller splices ``node`` where the input was.

    split(loop, factor, namer=None, remainder="guard"|"epilogue") -> For | Block
    unroll(loop, factor=None, namer=None, max_full=64)             -> Block | For
    interchange(outer)                                             -> For
    fuse(first, second)                                            -> For
    distribute(loop, at)                                           -> Block

``namer`` (xpiler.passes.base.Namer) gives the new loop variables; by default names not
used inside the loop. Loops must be canonical (canon.py); dependences are tested by
dependence.py, index rewrites proved by iterspace.py.
"""
from .fuse import fuse
from .reorder import interchange
from .result import Applied
from .split import split
from .stmt_split import distribute
from .unroll import unroll

__all__ = ["Applied", "distribute", "fuse", "interchange", "split", "unroll"]
