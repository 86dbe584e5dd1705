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
from ...ir.visitor import walk
from ..base import Declined
from .canon import canonical
from .dependence import accesses, first_conflict, region_varying
from .result import Applied, decline
from .smt import locked

WHO = "parallel"


def _other_iteration(c1, c2):
    return c1[0] != c2[0]


@locked
def parallelize(loop: N.For) -> Applied:
    """``loop`` marked ``kind="parallel"``, or Declined naming a dependence carried by it."""
    canonical(loop, WHO)
    if any(isinstance(n, (N.Return, N.Barrier)) for n in walk(loop.body)):
        decline(WHO, f"loop {loop.var} returns or synchronizes", loop)
    acc = accesses(loop.body, (loop,), region=loop)
    pairs = [(a, b) for i, a in enumerate(acc) for b in acc[i:]]
    found = first_conflict(pairs, _other_iteration, region_varying(loop))
    if found:
        decline(WHO, f"loop {loop.var} carries a dependence: {found}", loop)
    return Applied(dataclasses.replace(loop, kind="parallel"),
                   (f"z3: no two iterations of {loop.var} conflict among {len(pairs)} access pairs",))


def mark_parallel_loops(stmts: list) -> tuple[list, list]:
    """Mark each top-level loop of ``stmts`` parallel when it is, and inside a parallel
    loop its perfectly nested loop too (a collapsible nest). Returns (stmts, notes)."""
    out, notes = [], []
    for s in stmts:
        if isinstance(s, N.For) and s.kind != "parallel":
            s = _mark_nest(s, notes)
        out.append(s)
    return out, notes


def _mark_nest(loop: N.For, notes: list) -> N.For:
    try:
        marked = parallelize(loop).node
    except Declined as e:
        notes.append(f"serial: {e.reason}")
        return loop
    body = marked.body.body
    if len(body) == 1 and isinstance(body[0], N.For) and body[0].kind != "parallel":
        inner = _mark_nest(body[0], notes)
        marked = dataclasses.replace(marked, body=N.Block((inner,)))
    return marked
