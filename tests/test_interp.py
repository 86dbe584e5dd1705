"""The reference interpreter (xpiler.ir.interp) and the meaning DSL (platforms.meaning)."""
import math

import numpy as np
import pytest

from xpiler.ir import interp
from xpiler.ir import nodes as N
from xpiler.ir import types as T
from xpiler.ir.interp import InterpError, Ptr, arith, call_math, common_dtype, convert
from xpiler.platforms.meaning import (assign, block, call, cast, const, declare, declare_array,
                                      if_, lanes, loop, loops, meaning_fn, store, var, view)


def v(name, t=None):
    return N.Var(name, t)


def c(value, t=T.I32):
    return N.Const(value, t)


# --------------------------------------------------------------------------- C arithmetic
def test_integer_division_and_remainder_truncate_toward_zero():
    assert arith("/", np.int32(-7), np.int32(2)) == -3
    assert arith("%", np.int32(-7), np.int32(2)) == -1
    assert arith("/", np.int32(7), np.int32(-2)) == -3
    assert arith("%", np.int32(7), np.int32(-2)) == 1


def test_integer_overflow_wraps_in_the_promoted_type():
    r = arith("+", np.int32(2**31 - 1), np.int32(1))
    assert r == -2**31 and r.dtype == np.int32
    # int8 + int8 promotes to int: no wrap at 8 bits
    r = arith("+", np.int8(127), np.int8(1))
    assert r == 128 and r.dtype == np.int32
    assert arith("-", np.uint32(0), np.uint32(1)) == 2**32 - 1


def test_usual_arithmetic_conversions():
    assert common_dtype(np.dtype(np.int32), np.dtype(np.float32)) == np.float32
    assert common_dtype(np.dtype(np.float32), np.dtype(np.float64)) == np.float64
    assert common_dtype(np.dtype(np.int32), np.dtype(np.uint32)) == np.uint32
    assert common_dtype(np.dtype(np.int64), np.dtype(np.uint32)) == np.int64
    assert common_dtype(np.dtype(np.int8), np.dtype(np.uint8)) == np.int32
    # mixed signed/unsigned comparison is done unsigned, as in C: -1 < 1u is false
    assert arith("<", np.int32(-1), np.uint32(1)) == 0


def test_float32_arithmetic_rounds_each_operation_to_single_precision():
    a, b = np.float32(1.0), np.float32(1e-8)
    assert arith("+", a, b) == np.float32(1.0)  # in double it would not be 1
    assert arith("+", a, b).dtype == np.float32
    # a double operand makes it double (C: float + double -> double)
    assert arith("+", a, np.float64(1e-8)) != 1.0


def test_conversions_truncate_floats_and_wrap_integers():
    assert convert(np.float32(-2.7), np.int32) == -2
    assert convert(300, np.int8) == 44
    assert convert(np.float64(3.9), np.uint8) == 3
    assert convert(2, np.bool_) == np.True_
    with pytest.raises(InterpError):
        convert(np.float32(np.nan), np.int32)


def test_math_functions():
    assert call_math("expf", [np.float32(1.0)]) == np.float32(math.e)
    assert call_math("expf", [np.float32(1.0)]).dtype == np.float32
    assert call_math("exp", [np.float64(1.0)]).dtype == np.float64
    assert call_math("sqrt", [np.float32(2.0)]).dtype == np.float32  # C++ overload
    assert call_math("sqrt", [np.int32(4)]) == 2.0
    assert call_math("erff", [np.float32(0.5)]) == np.float32(math.erf(0.5))
    assert call_math("max", [np.int32(3), np.int32(-5)]) == 3
    assert call_math("fminf", [np.float32(np.nan), np.float32(1.0)]) == 1.0
    assert call_math("floorf", [np.float32(-1.5)]) == -2.0
    assert call_math("roundf", [np.float32(2.5)]) == 3.0  # half away from zero
    assert call_math("rintf", [np.float32(2.5)]) == 2.0  # half to even
    assert call_math("expf", [np.float32(1000.0)]) == np.inf
    assert call_math("__expf", [np.float32(0.0)]) == 1.0
    assert call_math("powf", [np.float32(2.0), np.float32(10.0)]) == 1024.0
    with pytest.raises(InterpError):
        call_math("no_such_function", [np.float32(1.0)])


# --------------------------------------------------------------------------- statements
def test_loop_nest_over_numpy_buffers():
    body = loops((v("m"), v("n")), lambda i, j: store(v("out"), i * v("n") + j,
                                                       load2(v("a"), i, j, v("n")) * 2.0))
    a = np.arange(12, dtype=np.float32)
    out = np.zeros(12, np.float32)
    interp.run(block(body), {"a": a, "out": out, "m": 3, "n": 4})
    assert np.array_equal(out, a * 2)


def load2(buf, i, j, n):
    from xpiler.platforms.meaning import load
    return load(buf, i * n + j)


def test_scalars_temporaries_if_and_reduction():
    acc = var("acc", T.F32)
    s = block(declare(acc, 0.0),
              loop(v("n"), lambda i: if_(load2(v("x"), 0, i, 0) > 0.0,
                                         assign(acc, acc + load2(v("x"), 0, i, 0)))),
              store(v("out"), 0, acc))
    x = np.array([1.5, -2, 3, -4, 0.25], np.float32)
    out = np.zeros(1, np.float32)
    interp.run(s, {"x": x, "out": out, "n": 5})
    assert out[0] == np.float32(4.75)


def test_pointer_arithmetic_views_and_reinterpret_casts():
    buf = np.arange(8, dtype=np.int32)
    # (p + 2)[1] is buf[3]
    e = N.Load(N.Binary("+", v("p"), c(2)), c(1))
    assert interp.evaluate(e, {"p": buf}) == 3
    # a store through a uint8 view lands in the int32 buffer (little endian byte 0 of buf[1])
    s = store(view(v("p"), T.U8), 4, 255)
    interp.run(block(s), {"p": buf})
    assert buf[1] == 255
    # pointer difference
    d = N.Binary("-", N.Binary("+", v("p"), c(5)), v("p"))
    assert interp.evaluate(d, {"p": buf}) == 5


def test_out_of_bounds_access_is_an_error():
    with pytest.raises(InterpError, match="out-of-bounds"):
        interp.evaluate(N.Load(v("p"), c(8)), {"p": np.zeros(8, np.float32)})


def test_vector_values_have_value_semantics_and_byte_views():
    vt = T.VectorType(T.I64, 8, "__m512i")
    it = interp.Interpreter()
    it.exec(N.Decl("a", vt))
    it.exec(block(loop(64, lambda j: store(lanes(v("a", vt), T.U8), j, j))))
    it.exec(N.Decl("b", vt, v("a", vt)))
    it.exec(store(lanes(v("a", vt), T.U8), 0, 99))
    assert it.value("b").view(np.uint8)[0] == 0  # b was a copy
    assert it.value("a").view(np.uint8)[0] == 99
    assert list(it.value("b").view(np.uint8)[:4]) == [0, 1, 2, 3]


def test_multidimensional_local_arrays():
    at = T.ArrayType(T.F32, (c(2), c(3)))
    s = block(N.Decl("t", at),
              loops((2, 3), lambda i, j: N.Assign(N.Load(N.Load(v("t"), i.node), j.node),
                                                  N.Cast(T.F32, (i * 10 + j).node))),
              store(v("out"), 0, N.Load(N.Load(v("t"), c(1)), c(2))))
    out = np.zeros(1, np.float32)
    interp.run(s, {"out": out})
    assert out[0] == 12


def test_break_continue_while_and_return():
    i = var("i", T.I32)
    s = block(declare(i, 0),
              N.While(c(1), block(
                  assign(i, i + 1),
                  N.If((i % 2).eq(0).node, block(N.Continue())),
                  N.If((i > 6).node, block(N.Break())))),
              N.Return(i.node))
    assert interp.Interpreter().run(s) == 7


def test_dma_strided_copy_uses_byte_sizes_and_segnum_plus_one_segments():
    src = np.arange(20, dtype=np.float32)
    dst = np.zeros(12, np.float32)
    # 3 segments (segnum 2) of 2 floats; src stride 5 floats, dst stride 4 floats
    s = N.Dma(v("dst"), v("src"), c(8), "GDRAM2NRAM", (c(16), c(20), c(2)))
    interp.run(s, {"dst": dst, "src": src})
    assert list(dst) == [0, 1, 0, 0, 5, 6, 0, 0, 10, 11, 0, 0]
    with pytest.raises(InterpError):
        interp.run(N.Dma(v("dst"), v("src"), c(100), "GDRAM2NRAM"), {"dst": dst, "src": src})


def test_specials_constants_and_unknown_names():
    assert interp.evaluate(N.Special("threadIdx.x"), specials={"threadIdx.x": 5}) == 5
    assert interp.evaluate(N.Unary("-", v("INFINITY"))) == -np.inf
    assert interp.evaluate(v("wmma::mem_col_major"), constants={"wmma::mem_col_major": 1}) == 1
    with pytest.raises(InterpError, match="unbound"):
        interp.evaluate(v("nope"))


def test_compound_assignment_converts_back_to_the_target_type():
    x = np.array([250], np.uint8)
    interp.run(block(store(v("x"), 0, 10, "+=")), {"x": x})
    assert x[0] == 4  # (uint8)(250 + 10)


# --------------------------------------------------------------------------- the DSL
def test_dsl_builds_plain_ir_with_lambda_names():
    m = meaning_fn(lambda dst, a, n: loop(n, lambda i: loop(n, lambda i: store(dst, i, a[i]))))
    s = m(v("dst"), v("a"), v("n"))
    assert isinstance(s, N.Block)
    outer = s.body[0]
    inner = outer.body.body[0]
    assert (outer.var, inner.var) == ("i", "i1")  # nested reuse gets a fresh name
    assert isinstance(inner.body.body[0], N.Assign)
    # constants: Python ints are int32, floats float32
    s2 = meaning_fn(lambda x: store(x, 0, 1.5))(v("x"))
    assert s2.body[0].value == N.Const(1.5, T.F32)
    assert s2.body[0].target.index == N.Const(0, T.I32)


def test_dsl_comparisons_and_math_calls():
    x = var("x", T.F32)
    e = call("expf", x) >= 1.0
    assert e.node == N.Binary(">=", N.Call("expf", (x.node,)), N.Const(1.0, T.F32))
    assert x.eq(2).node.op == "==" and x.ne(2).node.op == "!="
    assert cast(T.I32, x).node == N.Cast(T.I32, x.node)
    assert const(2, T.U8).node == N.Const(2, T.U8)
    assert declare_array(var("t", T.F32), 4) == N.Decl("t", T.ArrayType(T.F32, (N.Const(4, T.I32),)))


def test_ptr_reinterpret_to_wider_type_needs_whole_elements():
    p = Ptr(np.zeros(6, np.uint8), 1)
    q = p.as_type(np.dtype(np.int32))
    assert q.buf.size == 1  # bytes 1..4 form one int32; byte 5 is not a whole element
