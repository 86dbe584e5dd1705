"""Direct translation between platforms with the same execution model (CUDA <-> HIP):
the program is kept as it is and only the runtime's spelling changes. It declines when
the program uses a platform's special instructions (WMMA, MFMA), which the other side
spells differently; the canonical route handles those."""
from __future__ import annotations

import dataclasses

from ..ir import nodes as N
from ..ir import types as T
from ..ir.visitor import Transformer, walk
from ..platforms.config import is_vendor_include
from ..platforms.host_api import runtime_renames
from ..platforms.registry import lookup
from .base import Declined

PASS = "direct-runtime-rename"


def direct_translate(program: N.Program, target: str) -> N.Program:
    if program.dialect == target:
        return program
    renames = runtime_renames(program.dialect, target)
    if not renames:
        raise Declined(PASS, f"{program.dialect} and {target} do not share an execution model")
    for n in walk(program):
        if isinstance(n, N.Call) and lookup(program.dialect, n.func) is not None and lookup(target, n.func) is None:
            raise Declined(PASS, f"{n.func} has no {target} spelling", n.span)
        if isinstance(n, T.FragmentType):
            raise Declined(PASS, "WMMA fragments have no HIP spelling here", None)
        if isinstance(n, N.Barrier) and n.scope == "warp" and target == "hip":
            raise Declined(PASS, "__syncwarp has no HIP equivalent", n.span)
        if isinstance(n, N.Special) and n.name == "warpSize":
            raise Declined(PASS, "warpSize differs between CUDA (32) and HIP (64)", n.span)

    class R(Transformer):
        def visit_Call(self, c):
            return dataclasses.replace(c, func=renames[c.func]) if c.func in renames else c

        def visit_Var(self, v):
            return dataclasses.replace(v, name=renames[v.name]) if v.name in renames else v

        def visit_NamedType(self, t):
            return dataclasses.replace(t, name=renames[t.name]) if t.name in renames else t

    # the source's own headers go; the target's prelude brings the target's
    kept = tuple(g for g in program.globals if not (isinstance(g, N.Pragma) and is_vendor_include(g.text)))
    return dataclasses.replace(R()(dataclasses.replace(program, globals=kept)), dialect=target)
