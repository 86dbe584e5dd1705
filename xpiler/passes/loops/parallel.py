"""Which loops of sequential code are parallel: no two different iterations conflict.

A loop is parallel when z3 proves that no access in iteration I and a conflicting access
(one of them a write) in iteration J != I can touch the same element -- arrays and scalars
alike, so a scalar declared outside and written inside (a reduction) keeps the loop
serial. The loop's own locals are private to an iteration. Used where a source has no
parallel marking of its own (plain C kernels) so that lowering has something to bind to
threads or tasks; everything the analysis does not understand keeps a loop serial.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.visitor import walk
from ..base import Declined, assigned_names, substitute
from .canon import canonical
from .dependence import accesses, first_conflict, region_varying
from .result import Applied, decline
from .smt import locked

WHO = "parallel"


def _other_iteration(c1, c2):
    return c1[0] != c2[0]


@locked
def parallelize(loop: N.For, pure: frozenset = frozenset()) -> Applied:
    """``loop`` marked ``kind="parallel"``, or Declined naming a dependence carried by it.
    ``pure``: device functions whose calls touch no memory (dependence.pure_functions)."""
    canonical(loop, WHO)
    if any(isinstance(n, (N.Return, N.Barrier)) for n in walk(loop.body)):
        decline(WHO, f"loop {loop.var} returns or synchronizes", loop)
    acc = accesses(loop.body, (loop,), region=loop, pure=pure)
    pairs = [(a, b) for i, a in enumerate(acc) for b in acc[i:]]
    found = first_conflict(pairs, _other_iteration, region_varying(loop))
    if found:
        decline(WHO, f"loop {loop.var} carries a dependence: {found}", loop)
    return Applied(dataclasses.replace(loop, kind="parallel"),
                   (f"z3: no two iterations of {loop.var} conflict among {len(pairs)} access pairs",))


def mark_parallel_loops(stmts: list, pure: frozenset = frozenset()) -> tuple[list, list]:
    """Mark each top-level loop of ``stmts`` parallel when it is, and inside a parallel
    loop its perfectly nested loop too (a collapsible nest). Returns (stmts, notes)."""
    out, notes = [], []
    for i, s in enumerate(stmts):
        if isinstance(s, N.For) and s.kind != "parallel":
            s = _mark_nest(s, notes, pure, known_sizes(stmts, i))
        out.append(s)
    return out, notes


def without_redeclared(facts: dict, loop: N.For) -> dict:
    """``facts`` less the names ``loop`` declares again (substituting those would be wrong)."""
    inside = {n.name if isinstance(n, N.Decl) else n.var for n in walk(loop) if isinstance(n, (N.Decl, N.For))}
    return {n: v for n, v in facts.items() if n not in inside}


def known_sizes(stmts: list, upto: int) -> dict:
    """Values of the integer variables declared among ``stmts[:upto]`` and never assigned
    in ``stmts`` (sizes: ``int n = 128;``), each in terms of earlier ones."""
    facts = {}
    assigned = assigned_names(N.Block(tuple(stmts)))
    for s in stmts[:upto]:
        if (isinstance(s, N.Decl) and isinstance(s.dtype, T.ScalarType) and s.dtype.is_int
                and s.init is not None and s.name not in assigned):
            facts[s.name] = substitute(s.init, facts)
    return facts


def _mark_nest(loop: N.For, notes: list, pure: frozenset, facts: dict) -> N.For:
    """``loop`` (and its perfectly nested loops) marked where parallel. The test runs on a
    copy with the known sizes (``facts``) substituted; the marks go on ``loop`` itself."""
    try:
        parallelize(substitute(loop, without_redeclared(facts, loop)), pure)
    except Declined as e:
        notes.append(f"serial: {e.reason}")
        return loop
    marked = dataclasses.replace(loop, kind="parallel")
    body = marked.body.body
    if len(body) == 1 and isinstance(body[0], N.For) and body[0].kind != "parallel":
        inner = _mark_nest(body[0], notes, pure, facts)
        marked = dataclasses.replace(marked, body=N.Block((inner,)))
    return marked
