"""Fuse two adjacent loops over the same iterations: ``for i: A; for j: B`` ->
``for i: {A} {B[j := i]}``.

z3 proves both loops run the same number of iterations with the same variable values
(so B's variable can be renamed). Legal when no fusion-preventing dependence exists: an
access of A in iteration k1 and a conflicting access of B in iteration k2 < k1 (B's
iteration k2 would then run before A's k1, reversing the original order, where all of A
ran first). Each body stays its own block, so their local declarations do not meet. The
fused loop is parallel only if both were and no dependence crosses iterations at all.
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ..base import assigned_names, names_in, substitute
from .canon import canonical, header_names
from .dependence import accesses, first_conflict, region_varying
from .iterspace import prove_same_space
from .result import Applied, decline
from .smt import locked

WHO = "fuse"


@locked
def fuse(first: N.For, second: N.For) -> Applied:
    """``second`` must directly follow ``first``. Returns the fused loop (``first``'s
    variable and header)."""
    canonical(first, WHO)
    canonical(second, WHO)
    for a, b in ((first, second), (second, first)):
        changed = header_names(a) & assigned_names(b.body)
        if changed:
            decline(WHO, f"loop {b.var}'s body assigns {', '.join(sorted(changed))}, read by loop {a.var}'s bounds", b)
    if second.var != first.var and first.var in names_in(second.body):
        decline(WHO, f"loop {second.var}'s body uses the name {first.var}, which fusion would capture", second)
    same = prove_same_space(WHO, first, second)
    body2 = substitute(second.body, {second.var: N.Var(first.var, first.dtype)})
    region = N.Block((first, second))
    varying = region_varying(region)
    acc1 = accesses(first.body, (first,), region=region)
    acc2 = accesses(second.body, (second,), region=region)
    pairs = [(a, b) for a in acc1 for b in acc2]
    found = first_conflict(pairs, lambda c1, c2: c1[0] > c2[0], varying)
    if found:
        decline(WHO, f"fusion-preventing dependence (loop {second.var} would run an iteration before "
                     f"the iteration of loop {first.var} it depends on): {found}", first)
    kind = "serial"
    if first.kind == second.kind == "parallel" and not first_conflict(pairs, lambda c1, c2: c1[0] != c2[0], varying):
        kind = "parallel"
    fused = dataclasses.replace(first, body=N.Block((first.body, body2)), kind=kind)
    return Applied(fused, (same, f"z3: no fusion-preventing dependence among {len(pairs)} access pairs"))
