"""Memory demotion: on-chip buffers become plain arrays and DMA copies become loops;
by-value SIMD vectors become small arrays (so the canonical program is plain C that
every target can print)."""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.consteval import try_fold
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer, walk
from ..base import Declined

PASS = "memory-demotion"
U8P = T.PointerType(T.U8)


def _elem_ptr(e):
    t = type_of(e)
    if isinstance(t, T.PointerType):
        return t.elem
    if isinstance(t, T.ArrayType):
        return t.elem if len(t.shape) == 1 else None
    return None


class _Demote(Transformer):
    def __init__(self):
        self.counter = 0

    def visit_Decl(self, d):
        if d.scope:
            dtype = dataclasses.replace(d.dtype, scope="") if isinstance(d.dtype, T.ArrayType) else d.dtype
            return dataclasses.replace(d, scope="", dtype=dtype)
        return d

    def visit_Dma(self, s: N.Dma):
        self.counter += 1
        seg, e = f"xpiler_seg{self.counter}", f"xpiler_e{self.counter}"
        elem = _elem_ptr(s.dst)
        src_elem = _elem_ptr(s.src)
        width = T.byte_size(elem) if elem is not None else 0
        same = elem is not None and src_elem is not None and T.byte_size(src_elem) == width and width > 0
        size = try_fold(s.size)
        if same and isinstance(size, int) and size % width:
            same = False
        strides = list(s.strides)
        if len(strides) not in (0, 3):
            raise Declined(PASS, "the 3-D __memcpy form is not lifted yet", s.span)
        if strides and same:
            for st in strides[:2]:
                v = try_fold(st)
                if not isinstance(v, int) or v % width:
                    same = False
        ev = N.Var(e, T.I64)
        if same:
            count = N.Binary("/", s.size, N.Const(width, T.I64)) if not isinstance(size, int) else N.Const(size // width, T.I64)
            dst, src = s.dst, s.src
            if strides:
                sv = N.Var(seg, T.I64)
                dst = N.Binary("+", dst, N.Binary("*", sv, N.Const(try_fold(strides[0]) // width, T.I64)))
                src = N.Binary("+", src, N.Binary("*", sv, N.Const(try_fold(strides[1]) // width, T.I64)))
            copy = N.Assign(N.Load(dst, ev), N.Load(src, ev))
        else:
            count = s.size
            dst = N.Cast(U8P, s.dst, "c")
            src = N.Cast(U8P, s.src, "c")
            if strides:
                sv = N.Var(seg, T.I64)
                dst = N.Binary("+", dst, N.Binary("*", sv, strides[0]))
                src = N.Binary("+", src, N.Binary("*", sv, strides[1]))
            copy = N.Assign(N.Load(dst, ev), N.Load(src, ev))
        loop = N.For(e, T.I64, N.Const(0, T.I64), "<", count, N.Const(1, T.I32), N.Block((copy,)),
                     kind="parallel", span=s.span)
        if strides:
            nseg = N.Binary("+", strides[2], N.Const(1, T.I32))
            return N.For(seg, T.I64, N.Const(0, T.I64), "<", nseg, N.Const(1, T.I32), N.Block((loop,)),
                         kind="parallel", span=s.span)
        return loop


def demote_memory(block: N.Block) -> N.Block:
    return _Demote()(block)


def vectors_to_arrays(block: N.Block) -> N.Block:
    """`float4 v = {0}` -> `float v[4] = {0}`; `__m512i a` -> `int64_t a[8]`."""
    # One name can be declared in sibling scopes with different vector types (an __m512i acc
    # in one loop, an __m128i acc in the next): each Decl and each Var converts its own type;
    # the name alone decides only for an untyped Var, and only when it is unambiguous.
    def as_array(t):
        if isinstance(t, T.VectorType):
            return T.ArrayType(t.elem, (N.Const(t.lanes, T.I32),))
        if isinstance(t, T.ArrayType) and isinstance(t.elem, T.VectorType):
            v = t.elem
            return T.ArrayType(v.elem, t.shape + (N.Const(v.lanes, T.I32),))
        return None

    vectors = {}
    for n in walk(block):
        if isinstance(n, N.Decl) and as_array(n.dtype) is not None:
            vectors.setdefault(n.name, []).append(as_array(n.dtype))
    if not vectors and not any(isinstance(n, (N.TypeAlias, T.VectorType)) for n in walk(block)):
        return block

    def array_of(name, dtype, span):
        if dtype is not None:
            return as_array(dtype)
        kinds = vectors.get(name, [])
        if kinds and any(k != kinds[0] for k in kinds):
            raise Declined(PASS, f"vector {name} is declared with different types and used untyped", span)
        return kinds[0] if kinds else None

    block = _whole_vector_copies(block)

    class V(Transformer):
        def visit_Member(self, m):
            # float4 components: v.x .. v.w are elements 0..3 of the array
            if isinstance(m.base, N.Var) and m.base.name in vectors and len(m.field) == 1 and m.field in "xyzw":
                return N.Load(m.base, N.Const("xyzw".index(m.field), T.I32), span=m.span)
            return m

        def visit_Var(self, v):
            t = array_of(v.name, v.dtype, v.span) if v.name in vectors else None
            return N.Var(v.name, t, span=v.span) if t is not None else v

        def visit_Decl(self, d):
            t = as_array(d.dtype)
            if t is None:
                return d
            if d.init is not None and not isinstance(d.init, N.InitList):
                raise Declined(PASS, f"vector {d.name} initialized from an expression", d.span)
            return dataclasses.replace(d, dtype=t)

        def visit_Block(self, b):
            body = tuple(s for s in b.body if not (isinstance(s, N.TypeAlias) and isinstance(s.dtype, T.VectorType)))
            return dataclasses.replace(b, body=body) if len(body) != len(b.body) else b

        def visit_Cast(self, c):
            # (const __m512i *)p only addresses bytes: point at the vector's elements instead
            t = c.dtype
            if isinstance(t, T.PointerType) and isinstance(t.elem, T.VectorType):
                return dataclasses.replace(c, dtype=dataclasses.replace(t, elem=t.elem.elem), kind="c")
            return c

        def visit_SizeOf(self, e):
            if isinstance(e.of, T.VectorType):
                return N.Const(e.of.bytes, T.U64, span=e.span)
            return e

        def visit_Assign(self, s):
            if isinstance(s.target, N.Var) and s.target.name in vectors:
                shape = s.target.dtype.shape if isinstance(s.target.dtype, T.ArrayType) \
                    else vectors[s.target.name][0].shape
                if isinstance(s.value, N.InitList) and s.op == "=":  # v = {0}: the rest are zero
                    n = try_fold(shape[-1])
                    vals = list(s.value.values) + [N.Const(0, T.I32)] * (n - len(s.value.values))
                    return N.Block(tuple(N.Assign(N.Load(s.target, N.Const(i, T.I32)), v, span=s.span)
                                         for i, v in enumerate(vals[:n])))
                if isinstance(s.value, N.Var) and s.value.name in vectors and s.op == "=":
                    n = shape[-1]
                    i = N.Var("xpiler_l", T.I32)
                    return N.For("xpiler_l", T.I32, N.Const(0, T.I32), "<", n, N.Const(1, T.I32),
                                 N.Block((N.Assign(N.Load(s.target, i), N.Load(s.value, i)),)))
                raise Declined(PASS, f"whole-vector assignment to {s.target.name}", s.span)
            return s

    return V()(block)


def _vector_view(e):
    """(pointer, vector type, index) of ``((V *)p)[i]``: a whole vector in memory."""
    if isinstance(e, N.Load) and isinstance(e.base, N.Cast) and isinstance(e.base.dtype, T.PointerType) \
            and isinstance(e.base.dtype.elem, T.VectorType):
        return e.base.value, e.base.dtype.elem, e.index
    return None


def _whole_vector_copies(block: N.Block) -> N.Block:
    """``float4 v = ((const float4 *)p)[i];``, ``v = ((float4 *)p)[i]`` and
    ``((float4 *)p)[i] = v`` as element loops over ``((float *)p)[i * 4 + l]``."""
    def elements(view, lane):
        p, vt, i = view
        ptr = N.Cast(T.PointerType(vt.elem), p, "c")
        return N.Load(ptr, N.Binary("+", N.Binary("*", i, N.Const(vt.lanes, T.I32)), lane))

    def lanes_loop(vt, body_of):
        lane = N.Var("xpiler_lane", T.I32)
        return N.For("xpiler_lane", T.I32, N.Const(0, T.I32), "<", N.Const(vt.lanes, T.I32), N.Const(1, T.I32),
                     N.Block((body_of(lane),)))

    def expand(s):
        if isinstance(s, N.Decl) and isinstance(s.dtype, T.VectorType) and _vector_view(s.init):
            view, v = _vector_view(s.init), N.Var(s.name, s.dtype)
            return [dataclasses.replace(s, init=None),
                    lanes_loop(view[1], lambda l: N.Assign(N.Load(v, l), elements(view, l), span=s.span))]
        if isinstance(s, N.Assign) and s.op == "=" and isinstance(s.target, N.Var) and _vector_view(s.value):
            view = _vector_view(s.value)
            return [lanes_loop(view[1], lambda l: N.Assign(N.Load(s.target, l), elements(view, l), span=s.span))]
        if isinstance(s, N.Assign) and s.op == "=" and _vector_view(s.target) and isinstance(s.value, N.Var):
            view = _vector_view(s.target)
            return [lanes_loop(view[1], lambda l: N.Assign(elements(view, l), N.Load(s.value, l), span=s.span))]
        return [s]

    class W(Transformer):
        def visit_Block(self, b):
            out = [x for st in b.body for x in expand(st)]
            return dataclasses.replace(b, body=tuple(out)) if len(out) != len(b.body) or out != list(b.body) else b

    return W()(block)


def fold_array_sizes(block: N.Block) -> N.Block:
    """`int Ho = (1 - 1) / 1 + 1; float tmp[Ho * Wo];` -> `float tmp[1]`: array sizes that are
    compile-time constants through local constants become literals (CUDA/HIP device code
    and C++ without extensions reject variable-length arrays)."""
    from ..base import assigned_names

    assigned = assigned_names(block)
    env = {}
    for n in walk(block):
        if isinstance(n, N.Decl) and n.init is not None and n.name not in assigned \
                and isinstance(n.dtype, T.ScalarType) and n.dtype.is_int:
            v = try_fold(n.init, env)
            if isinstance(v, int):
                env[n.name] = v

    class F(Transformer):
        def visit_Decl(self, d):
            if isinstance(d.dtype, T.ArrayType):
                shape = tuple(N.Const(try_fold(e, env), T.I32) if e is not None and isinstance(try_fold(e, env), int)
                              else e for e in d.dtype.shape)
                if shape != d.dtype.shape:
                    return dataclasses.replace(d, dtype=dataclasses.replace(d.dtype, shape=shape))
            return d

    return F()(block) if env else block
