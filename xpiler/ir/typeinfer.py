"""Types of IR expressions, computed from the types the front-end recorded on variables,
constants and casts (C's rules, reduced to what kernels use)."""
from __future__ import annotations

from . import nodes as N
from . import types as T

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=", "&&", "||")
INDEX_VALUES_TYPE = T.I32  # threadIdx.x, clusterId ...: read as int by kernels


def type_of(e: N.Expr, call_types: dict | None = None) -> T.Type | None:
    """The type of ``e``; None when it cannot be known (an unknown function's result)."""
    if isinstance(e, (N.Const, N.Var)):
        return e.dtype
    if isinstance(e, N.Special):
        return INDEX_VALUES_TYPE
    if isinstance(e, N.Cast):
        return e.dtype
    if isinstance(e, N.Unary):
        return T.BOOL if e.op == "!" else type_of(e.operand, call_types)
    if isinstance(e, N.Binary):
        if e.op in COMPARISONS:
            return T.BOOL
        a, b = type_of(e.lhs, call_types), type_of(e.rhs, call_types)
        if e.op in ("<<", ">>"):
            return T.promote(a, a)
        if e.op == "-" and isinstance(a, T.PointerType) and isinstance(b, T.PointerType):
            return T.I64
        return T.promote(a, b)
    if isinstance(e, N.Select):
        return T.promote(type_of(e.then, call_types), type_of(e.other, call_types))
    if isinstance(e, N.Load):
        return T.element_type(type_of(e.base, call_types)) if type_of(e.base, call_types) else None
    if isinstance(e, N.Deref):
        t = type_of(e.pointer, call_types)
        return t.elem if isinstance(t, T.PointerType) else None
    if isinstance(e, N.AddressOf):
        t = type_of(e.value, call_types)
        return T.PointerType(t) if t is not None else None
    if isinstance(e, N.SizeOf):
        return T.U64
    if isinstance(e, N.Call):
        return (call_types or {}).get(e.func)
    if isinstance(e, N.Member):
        base = type_of(e.base, call_types)
        if isinstance(base, T.FragmentType) and e.field == "x":
            return T.ArrayType(base.elem, (None,))
        if e.field == "num_elements":
            return T.I32
        if isinstance(base, T.NamedType) and base.name == "dim3":
            return T.U32
    return None
