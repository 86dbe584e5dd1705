"""Interchange two perfectly nested loops: ``for i: for j: S`` -> ``for j: for i: S``.

Legal when the nest is rectangular (the inner loop's header does not read i, so the
iteration set is the same product either way) and no dependence has direction (<, >):
no two conflicting accesses run in iterations (i1, j1) before (i2, j2) with i1 < i2 and
j1 > j2 -- exactly the pairs whose order interchange reverses. z3 decides this for every
pair of accesses. Two loops marked parallel are interchangeable without the test (the
marking already says no iterations depend on each other).
"""
from __future__ import annotations

import dataclasses

import z3

from ...ir import nodes as N
from .canon import canonical, header_names
from .dependence import accesses, first_conflict, region_varying
from .result import Applied, decline
from .smt import locked

WHO = "interchange"


def _reversed(c1, c2):
    return z3.And(c1[0] < c2[0], c1[1] > c2[1])


@locked
def interchange(outer: N.For) -> Applied:
    """``outer`` must contain exactly one statement, the inner loop. Returns the new
    outer loop (over the old inner variable)."""
    canonical(outer, WHO)
    body = outer.body.body
    if len(body) != 1 or not isinstance(body[0], N.For):
        decline(WHO, f"loop {outer.var} is not perfectly nested around one loop", outer)
    inner = body[0]
    canonical(inner, WHO)
    if outer.var in header_names(inner):
        decline(WHO, f"loop {inner.var}'s bounds depend on {outer.var} (not rectangular)", inner)
    swapped = dataclasses.replace(inner, body=N.Block((dataclasses.replace(outer, body=inner.body),)),
                                  span=outer.span)
    shape = f"rectangular: loop {inner.var}'s header does not read {outer.var}"
    if outer.kind == inner.kind == "parallel":
        return Applied(swapped, (shape, "both loops are marked parallel"))
    acc = accesses(inner.body, (outer, inner), region=outer)
    pairs = [(a, b) for a in acc for b in acc]
    found = first_conflict(pairs, _reversed, region_varying(outer))
    if found:
        decline(WHO, f"dependence with direction (<, >) on ({outer.var}, {inner.var}): {found}", outer)
    return Applied(swapped, (shape, f"z3: no dependence with direction (<, >) among {len(pairs)} access pairs"))
