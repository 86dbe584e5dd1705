"""Loop transformations (xpiler.passes.loops): each legal rewrite runs the same as the
original in the reference interpreter; each illegal one declines naming the dependence."""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpiler.ir import interp
from xpiler.ir import nodes as N
from xpiler.ir.visitor import find_all
from xpiler.lang import parse_source
from xpiler.passes.base import Declined, substitute
from xpiler.passes.loops import distribute, fuse, interchange, split, unroll
from xpiler.passes.loops.dependence import accesses, conflict


def body_of(src: str) -> tuple:
    """The statements of the first function of a C snippet."""
    return parse_source(src, "cpu").functions[0].body.body


def run(stmts, arrays: dict, **scalars) -> dict:
    bufs = {k: v.copy() for k, v in arrays.items()}
    interp.run(N.Block(tuple(stmts)), {**bufs, **{k: np.int32(v) for k, v in scalars.items()}})
    return bufs


def assert_differs(before, after, arrays, **scalars):
    """The rewrite a pass declined would indeed have changed the results."""
    want, got = run(before, arrays, **scalars), run(after, arrays, **scalars)
    assert any(not np.array_equal(got[k], want[k]) for k in want)


def assert_same(before, after, arrays, **scalars):
    want, got = run(before, arrays, **scalars), run(after, arrays, **scalars)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} differs ({scalars})")


def replaced(stmts, index, node):
    return stmts[:index] + (node,) + stmts[index + 1:]


def rand(*names, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(size).astype(np.float32) for n in names}


def declined(fn, *args, **kw) -> str:
    with pytest.raises(Declined) as e:
        fn(*args, **kw)
    return e.value.reason


# --------------------------------------------------------------------------- split
SPLIT_SRC = """void f(float* a, float* b, int n) {
  for (int i = 1; i < n; i += 2) a[i] = a[i - 1] * 0.5f + b[i];
}"""


@pytest.mark.parametrize("remainder", ["guard", "epilogue"])
@pytest.mark.parametrize("factor", [1, 3, 4])
def test_split_runs_like_the_original_for_non_divisible_extents(remainder, factor):
    stmts = body_of(SPLIT_SRC)
    new, proved = split(stmts[0], factor, remainder=remainder)
    assert any("z3" in p for p in proved)
    assert len(find_all(new, N.For)) >= 2
    arrays = rand("a", "b")
    for n in range(0, 24):
        assert_same(stmts, (new,), arrays, n=n)


def test_split_proves_an_exact_factor_needs_no_remainder():
    stmts = body_of("void f(float* a) { for (int i = 0; i < 16; ++i) a[i] = a[i] + i; }")
    guarded, proved = split(stmts[0], 4)
    assert not find_all(guarded, N.If) and any("no remainder" in p for p in proved)
    tiled, _ = split(stmts[0], 4, remainder="epilogue")
    assert isinstance(tiled, N.For)  # no epilogue loop
    assert_same(stmts, (guarded,), rand("a"))
    assert_same(stmts, (tiled,), rand("a"))
    # 5 does not divide 16: the remainder must be there
    assert find_all(split(stmts[0], 5).node, N.If)
    assert isinstance(split(stmts[0], 5, remainder="epilogue").node, N.Block)


@pytest.mark.parametrize("remainder", ["guard", "epilogue"])
def test_split_of_a_downward_loop(remainder):
    stmts = body_of("void f(float* a, int n) { for (int i = n; i >= 2; i -= 3) a[i] = a[i] + a[i + 1]; }")
    new, _ = split(stmts[0], 4, remainder=remainder)
    arrays = rand("a")
    for n in range(0, 30):
        assert_same(stmts, (new,), arrays, n=n)


TRACE = """void f(int* t, int n) {{
  int c = 0;
  for (int i = {start}; i {cmp} {bound}; i += {step}) {{ t[c] = i; c = c + 1; }}
}}"""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(-5, 5), extent=st.integers(0, 20), step=st.sampled_from([1, 2, 3, -1, -2]),
       inclusive=st.booleans(), factor=st.integers(1, 6), remainder=st.sampled_from(["guard", "epilogue"]))
def test_split_property_runs_the_same_iterations_in_order(start, extent, step, inclusive, factor, remainder):
    up = step > 0
    cmp = ("<=" if inclusive else "<") if up else (">=" if inclusive else ">")
    stmts = body_of(TRACE.format(start=start, cmp=cmp, bound="n", step=step))
    new, _ = split(stmts[1], factor, remainder=remainder)
    n = start + extent if up else start - extent
    out = {"t": np.full(32, -99, dtype=np.int32)}
    assert_same(stmts, replaced(stmts, 1, new), out, n=n)


def test_split_keeps_continue_meaning_the_next_iteration():
    stmts = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) { if (a[i] < 0) continue; a[i] = i; } }")
    for remainder in ("guard", "epilogue"):
        new, _ = split(stmts[0], 3, remainder=remainder)
        assert_same(stmts, (new,), rand("a"), n=17)


def test_split_declines_a_loop_that_breaks():
    stmts = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) { if (a[i] < 0) break; a[i] = 1; } }")
    assert "break" in declined(split, stmts[0], 4)


def test_split_declines_a_bound_the_body_changes():
    stmts = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) { n = n - 1; a[i] = 1; } }")
    assert "n" in declined(split, stmts[0], 2) and "assigns" in declined(split, stmts[0], 2)


# --------------------------------------------------------------------------- unroll
def test_full_unroll_leaves_no_loop():
    stmts = body_of("void f(float* a) { for (int i = 10; i > 0; i -= 3) { float t = a[i]; a[i] = t * 2.0f + i; } }")
    new, proved = unroll(stmts[0])
    assert not find_all(new, N.For) and len(new.body) == 4
    assert any("z3" in p for p in proved)
    assert_same(stmts, (new,), rand("a"))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_unroll_by_factor_with_remainder(factor):
    stmts = body_of("void f(float* a, int n) { for (int i = 3; i < n; i += 2) { float t = a[i - 1]; a[i] = t + a[i]; } }")
    new, _ = unroll(stmts[0], factor)
    arrays = rand("a")
    for n in range(0, 30):
        assert_same(stmts, (new,), arrays, n=n)


def test_unroll_declines():
    loop = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) { if (a[i] < 0) continue; a[i] = 1; } }")[0]
    assert "continue" in declined(unroll, loop, 2)
    sym = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) a[i] = 1; }")[0]
    assert "constant trip count" in declined(unroll, sym)
    big = body_of("void f(float* a) { for (int i = 0; i < 1000; ++i) a[i] = 1; }")[0]
    assert "limit" in declined(unroll, big)


# --------------------------------------------------------------------------- interchange
def test_interchange_legal_nest_runs_the_same():
    stmts = body_of("""void f(float* a, float* c) {
      for (int i = 1; i < 6; ++i)
        for (int j = 0; j < 7; ++j)
          a[i * 8 + j] = a[(i - 1) * 8 + j] * 0.5f + c[j * 8 + i];
    }""")  # direction (<, =): legal
    new, proved = interchange(stmts[0])
    assert new.var == "j" and new.body.body[0].var == "i"
    assert any("(<, >)" in p for p in proved)
    assert_same(stmts, (new,), rand("a", "c"))


def test_interchange_declines_a_less_greater_dependence():
    stmts = body_of("""void f(float* a) {
      for (int i = 1; i < 6; ++i)
        for (int j = 0; j < 6; ++j)
          a[i * 8 + j] = a[(i - 1) * 8 + j + 1] + 1.0f;
    }""")
    reason = declined(interchange, stmts[0])
    assert "(<, >)" in reason and "a[(i - 1) * 8 + j + 1]" in reason and "a[i * 8 + j]" in reason
    outer, inner = stmts[0], stmts[0].body.body[0]
    forced = dataclasses.replace(inner, body=N.Block((dataclasses.replace(outer, body=inner.body),)))
    assert_differs(stmts, (forced,), rand("a"))


def test_interchange_with_symbolic_bounds_and_stride():
    stmts = body_of("""void f(float* a, float* b, int n, int m) {
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j) { int k = i * m + j; a[k] = a[k] * 2.0f + b[j]; }
    }""")
    new, _ = interchange(stmts[0])
    arrays = rand("a", "b")
    for n, m in [(0, 3), (3, 4), (5, 7), (7, 1)]:
        assert_same(stmts, (new,), arrays, n=n, m=m)


def test_interchange_declines_a_reduction_and_a_triangle():
    red = body_of("""void f(float* a, float* s, int n) {
      for (int i = 0; i < n; ++i) for (int j = 0; j < n; ++j) s[0] = s[0] + a[i * n + j];
    }""")[0]
    assert "s[0]" in declined(interchange, red)
    tri = body_of("void f(float* a) { for (int i = 0; i < 8; ++i) for (int j = 0; j < i; ++j) a[i * 8 + j] = 0; }")[0]
    assert "rectangular" in declined(interchange, tri)


def test_interchange_of_parallel_loops_skips_the_dependence_test():
    outer = body_of("""void f(float* a) {
      for (int i = 1; i < 6; ++i) for (int j = 0; j < 6; ++j) a[i * 8 + j] = a[(i - 1) * 8 + j + 1];
    }""")[0]
    inner = dataclasses.replace(outer.body.body[0], kind="parallel")
    marked = dataclasses.replace(outer, kind="parallel", body=N.Block((inner,)))
    new, proved = interchange(marked)
    assert new.var == "j" and any("parallel" in p for p in proved)


# --------------------------------------------------------------------------- fuse
FUSE_SRC = """void f(float* a, float* b, float* c, int n) {{
  for (int i = 1; i < n; ++i) b[i] = a[i] * 2.0f;
  for (int j = 1; j <= n - 1; j++) c[j] = {read} + 1.0f;
}}"""


@pytest.mark.parametrize("read", ["b[j]", "b[j - 1]", "a[j + 1]"])
def test_fuse_legal(read):
    stmts = body_of(FUSE_SRC.format(read=read))
    new, proved = fuse(stmts[0], stmts[1])
    assert isinstance(new, N.For) and len(find_all(new, N.For)) == 1
    assert any("same iterations" in p for p in proved)
    arrays = rand("a", "b", "c")
    for n in range(0, 20):
        assert_same(stmts, (new,), arrays, n=n)


def test_fuse_declines_a_read_ahead_of_the_writer():
    stmts = body_of(FUSE_SRC.format(read="b[j + 1]"))
    reason = declined(fuse, stmts[0], stmts[1])
    assert "fusion-preventing" in reason and "b[j + 1]" in reason and "b[i]" in reason
    first, second = stmts
    forced = dataclasses.replace(first, body=N.Block((first.body, substitute(second.body, {"j": N.Var("i")}))))
    assert_differs(stmts, (forced,), rand("a", "b", "c"), n=10)


def test_fused_loop_stays_parallel_only_without_crossing_dependences():
    def marked(read):
        return [dataclasses.replace(s, kind="parallel") for s in body_of(FUSE_SRC.format(read=read))]
    assert fuse(*marked("b[j]")).node.kind == "parallel"
    assert fuse(*marked("b[j - 1]")).node.kind == "serial"


def test_fuse_declines_different_iteration_spaces():
    stmts = body_of("""void f(float* a, int n) {
      for (int i = 0; i < n; ++i) a[i] = 1;
      for (int j = 0; j <= n; ++j) a[j] = a[j] + 1;
    }""")
    assert "same iterations" in declined(fuse, stmts[0], stmts[1])


# --------------------------------------------------------------------------- distribute
def test_distribute_legal_forward_dependence():
    stmts = body_of("""void f(float* a, float* b, float* c, int n) {
      for (int i = 1; i < n; ++i) { b[i] = a[i] + 1.0f; float t = b[i - 1]; c[i] = t * 2.0f; }
    }""")
    new, proved = distribute(stmts[0], 1)
    assert isinstance(new, N.Block) and len(new.body) == 2 and any("backward" in p for p in proved)
    arrays = rand("a", "b", "c")
    for n in range(0, 20):
        assert_same(stmts, (new,), arrays, n=n)


def test_distribute_declines_a_backward_dependence():
    stmts = body_of("""void f(float* a, float* b, int n) {
      for (int i = 0; i < n; ++i) { a[i] = b[i] + 1.0f; b[i + 1] = a[i] * 2.0f; }
    }""")
    reason = declined(distribute, stmts[0], 1)
    assert "backward" in reason and "b[i + 1]" in reason and "b[i]" in reason
    loop = stmts[0]
    forced = tuple(dataclasses.replace(loop, body=N.Block(part)) for part in (loop.body.body[:1], loop.body.body[1:]))
    assert_differs(stmts, forced, rand("a", "b"), n=10)


def test_distribute_declines_a_shared_local():
    stmts = body_of("void f(float* a, float* b) { for (int i = 0; i < 8; ++i) { float t = a[i]; b[i] = t; } }")
    assert "t" in declined(distribute, stmts[0], 1) and "declared" in declined(distribute, stmts[0], 1)


# --------------------------------------------------------------------------- dependence
def test_unknown_calls_and_pointer_aliases_conflict_with_everything():
    loop = body_of("void f(float* a, float* b) { for (int i = 0; i < 8; ++i) { b[i] = 1; g(a); } }")[0]
    acc = accesses(loop.body, (loop,))
    call = next(x for x in acc if x.buffer == "?")
    write_b = next(x for x in acc if x.buffer == "b" and x.write)
    assert conflict(write_b, call, lambda c1, c2: c1[0] < c2[0], set()) is not None
    # distinct buffers never conflict; the same element in a later iteration does not either
    read_a = [x for x in accesses(body_of("void f(float* a, float* b) { for (int i = 0; i < 8; ++i) b[i] = a[i]; }")[0].body,
                                  (loop,))]
    b_w = next(x for x in read_a if x.buffer == "b")
    assert conflict(b_w, b_w, lambda c1, c2: c1[0] < c2[0], set()) is None
    a_r = next(x for x in read_a if x.buffer == "a")
    assert conflict(b_w, a_r, lambda c1, c2: c1[0] < c2[0], set()) is None


# --------------------------------------------------------------------------- the proofs
def test_the_enumeration_proof_rejects_wrong_rewrites():
    from xpiler.passes.loops.iterspace import Piece, prove_enumeration
    loop = body_of("void f(float* a, int n) { for (int i = 0; i < n; ++i) a[i] = 1; }")[0]
    i32 = loop.dtype

    def tiles(inner_extent, value, guard=True):
        inner = N.For("ii", i32, N.Const(0, i32), "<", N.Const(inner_extent, i32), N.Const(1, i32), loop.body)
        outer = N.For("o", i32, N.Const(0, i32), "<", N.Var("n"), N.Const(4, i32), N.Block((inner,)))
        g = N.Binary("<", value, N.Var("n")) if guard else None
        return Piece((outer, inner), value, lambda c: c["o"] * 4 + c["ii"],
                     lambda k: {"o": k / 4, "ii": k % 4}, guard=g)

    right = N.Binary("+", N.Var("o"), N.Var("ii"))
    assert "z3" in prove_enumeration("split", loop, [tiles(4, right)])
    with pytest.raises(Declined):  # blocks of 5 overlap the next block
        prove_enumeration("split", loop, [tiles(5, right)])
    with pytest.raises(Declined):  # off by one
        prove_enumeration("split", loop, [tiles(4, N.Binary("+", right, N.Const(1, i32)))])
    with pytest.raises(Declined) as e:  # no guard: the last block overruns a symbolic n
        prove_enumeration("split", loop, [tiles(4, right, guard=False)])
    assert "counterexample" in e.value.reason


def test_unsigned_downward_loops_decline():
    loop = body_of("void f(float* a, unsigned n) { for (unsigned i = n; i > 0; i--) a[i] = 1; }")[0]
    assert "unsigned" in declined(split, loop, 4)


# ------------------------------------------------------------------ parallel loops
def test_parallel_marks_independent_nests_and_keeps_reductions_serial():
    from xpiler.passes.loops.parallel import mark_parallel_loops, parallelize

    stmts = body_of("""void f(float *a, float *b, float *c, int n) {
      for (int i = 0; i < n; i++) {
        for (int j = 0; j < 16; j++) {
          float s = 0.0f;
          for (int k = 0; k < 8; k++) s += a[i * 128 + j * 8 + k];
          c[i * 16 + j] = s;
        }
      }
      float total = 0.0f;
      for (int i = 0; i < n; i++) total += a[i];
      for (int i = 1; i < n; i++) b[i] = b[i - 1] + a[i];
      b[0] = total;
    }""")
    marked, notes = mark_parallel_loops(list(stmts))
    loops = [s for s in marked if isinstance(s, N.For)]
    assert loops[0].kind == "parallel" and loops[0].body.body[0].kind == "parallel"  # i and j
    k_loop = find_all(loops[0], N.For)[-1]
    assert k_loop.var == "k" and k_loop.kind != "parallel"  # not a perfectly nested loop
    assert loops[1].kind != "parallel" and loops[2].kind != "parallel"
    assert any("total" in n for n in notes) and any("b[i - 1]" in n for n in notes), notes
    with pytest.raises(Declined, match=r"loop i carries a dependence: read b\[i - 1\] and write b\[i\] in iterations \(i=\d+\) and \(i=\d+\)"):
        parallelize(stmts[3])
    # marking changes no result (the interpreter runs loops in order either way)
    arrays = rand("a", "b", "c", size=2048)
    assert_same(stmts, marked, arrays, n=9)


def test_parallel_declines_what_it_cannot_name():
    from xpiler.passes.loops.parallel import parallelize

    (loop,) = body_of("""void f(float *a, int *idx, int n) {
      for (int i = 0; i < n; i++) a[idx[i]] = 1.0f;
    }""")
    assert "carries a dependence" in declined(parallelize, loop)  # scatter: idx may repeat
