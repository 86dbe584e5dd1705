"""The IR: immutability, structural hashing, traversal and transformation."""
import dataclasses
import subprocess
import sys

import pytest

from xpiler.ir import nodes as N
from xpiler.ir import types as T
from xpiler.ir import Transformer, find_all, structural_hash, walk
from xpiler.ir.consteval import fold, try_fold


def _add_kernel(name="add", span=None):
    i = N.Var("i", T.I32)
    body = N.Block((
        N.For("i", T.I32, N.Const(0, T.I32), "<", N.Var("n", T.I32), N.Const(1, T.I32),
              N.Block((N.Assign(N.Load(N.Var("c", T.PointerType(T.F32)), i),
                                N.Binary("+", N.Load(N.Var("a", T.PointerType(T.F32)), i),
                                         N.Load(N.Var("b", T.PointerType(T.F32)), i))),)),
              span=span),
    ))
    params = tuple(N.Param(p, T.PointerType(T.F32)) for p in "abc") + (N.Param("n", T.I32),)
    return N.Program("cpu", functions=(N.Function(name, params, T.VOID, body, "kernel", True),))


def test_nodes_are_immutable():
    c = N.Const(1, T.I32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.value = 2


def test_hash_ignores_spans_but_not_structure():
    a = _add_kernel(span=N.Span("a.cpp", 1, 1))
    b = _add_kernel(span=N.Span("b.cpp", 9, 4))
    assert a == b
    assert structural_hash(a) == structural_hash(b)
    assert structural_hash(a) != structural_hash(_add_kernel(name="sub"))


def test_hash_distinguishes_int_and_float_constants():
    assert structural_hash(N.Const(1, T.I32)) != structural_hash(N.Const(1.0, T.F32))
    assert structural_hash(N.Const(1.0, T.F32)) != structural_hash(N.Const(1.0, T.F64))


def test_hash_is_stable_across_processes():
    """Same digest in a fresh interpreter with a different hash seed (no id()/hash() leaks)."""
    code = ("import sys; sys.path.insert(0, %r); from tests.test_ir import _add_kernel; "
            "from xpiler.ir import structural_hash; print(structural_hash(_add_kernel()))")
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = set()
    for seed in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code % root], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, cwd=root, check=True)
        outs.add(r.stdout.strip())
    assert outs == {structural_hash(_add_kernel())}


def test_walk_and_find_all():
    p = _add_kernel()
    loads = find_all(p, N.Load)
    assert {l.base.name for l in loads} == {"a", "b", "c"}
    assert any(isinstance(n, N.For) for n in walk(p))


def test_transformer_rebuilds_only_changed_paths():
    class Rename(Transformer):
        def visit_Var(self, v):
            return N.Var("x", v.dtype) if v.name == "a" else v

    p = _add_kernel()
    q = Rename()(p)
    assert {v.name for v in find_all(q, N.Var)} >= {"x", "b", "c"}
    assert "a" not in {v.name for v in find_all(q, N.Var)}
    # untouched subtrees keep their identity
    assert q.functions[0].params is p.functions[0].params


def test_consteval_c_semantics():
    e = N.Binary("/", N.Unary("-", N.Const(7, T.I32)), N.Const(2, T.I32))
    assert fold(e) == -3  # C truncates toward zero
    assert fold(N.Binary("%", N.Unary("-", N.Const(7, T.I32)), N.Const(2, T.I32))) == -1
    assert fold(N.Binary("*", N.Var("K", None), N.SizeOf(T.F32)), {"K": 4}) == 16
    assert try_fold(N.Var("n", T.I32)) is None


def test_type_promotion():
    assert T.promote(T.I8, T.I16) == T.I32
    assert T.promote(T.I32, T.F32) == T.F32
    assert T.promote(T.F16, T.F32) == T.F32
    assert T.promote(T.I64, T.U32) == T.I64
