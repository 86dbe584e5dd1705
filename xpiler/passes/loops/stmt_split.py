"""Statement split (loop distribution): ``for i: {A; B}`` -> ``for i: A; for i: B``.

Legal when no dependence goes backward from B to A: an access of B in iteration k1 and a
conflicting access of A in a later iteration k2 > k1 (originally B's k1 ran first; after
distribution every A runs before every B). z3 decides this for every pair. Names A
declares may not be used by B (that would need scalar expansion).
"""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ..base import names_in
from .canon import canonical
from .dependence import accesses, first_conflict, region_varying
from .result import Applied, decline
from .smt import locked

WHO = "distribute"


@locked
def distribute(loop: N.For, at: int) -> Applied:
    """Split ``loop``'s body before statement ``at`` (0 < at < number of statements).
    Returns a block of the two loops."""
    canonical(loop, WHO)
    body = loop.body.body
    if not 0 < at < len(body):
        decline(WHO, f"cannot split a body of {len(body)} statements at {at}", loop)
    first, second = body[:at], body[at:]
    shared = {s.name for s in first if isinstance(s, N.Decl)} & names_in(N.Block(second))
    if shared:
        decline(WHO, f"statements after {at} use {', '.join(sorted(shared))}, declared before it", loop)
    acc_a = accesses(first, (loop,), region=loop)
    acc_b = accesses(second, (loop,), region=loop)
    pairs = [(b, a) for b in acc_b for a in acc_a]
    found = first_conflict(pairs, lambda c1, c2: c1[0] < c2[0], region_varying(loop))
    if found:
        decline(WHO, f"backward dependence from the second part to the first (across iterations of "
                     f"{loop.var}): {found}", loop)
    loops = (dataclasses.replace(loop, body=N.Block(first)), dataclasses.replace(loop, body=N.Block(second), span=None))
    return Applied(N.Block(loops), (f"z3: no backward dependence among {len(pairs)} access pairs",))
