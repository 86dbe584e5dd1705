"""Vectorization hints for CPU output: `#pragma omp simd` on innermost loops whose
iterations are independent (proved by xpiler.passes.loops.parallel; a reduction or any
access the analysis cannot name keeps a loop unhinted). Parallel nests get
`#pragma omp parallel for` from the lowering itself."""
from __future__ import annotations

from ...ir import nodes as N
from ...ir.visitor import Transformer, walk
from ..base import Declined

SIMD = "#pragma omp simd"


class _Hint(Transformer):
    def __init__(self):
        self.count = 0

    def visit_Block(self, b):
        out, changed = [], False
        for s in b.body:
            if _innermost(s) and not (out and isinstance(out[-1], N.Pragma)) and independent(s) is None:
                out.append(N.Pragma(SIMD))
                self.count += 1
                changed = True
            out.append(s)
        return N.Block(tuple(out)) if changed else b


def _innermost(s) -> bool:
    return isinstance(s, N.For) and s.kind != "parallel" and not any(
        isinstance(n, (N.For, N.While)) for n in walk(s.body))


def independent(loop: N.For) -> str | None:
    """None when no two iterations of ``loop`` conflict, else the reason."""
    from ..loops.parallel import parallelize

    try:
        parallelize(loop)
        return None
    except Declined as e:
        return e.reason


def simd_hints(fn: N.Function) -> tuple[N.Function, int]:
    """``fn`` with hints added, and how many."""
    h = _Hint()
    return h(fn), h.count
