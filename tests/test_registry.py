"""The intrinsic registry: structure, roles versus meanings, platform facts, the generated
reference, and every meaning evaluated by the interpreter against a numpy reference."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from xpiler.ir import nodes as N
from xpiler.ir import types as T
from xpiler.ir.visitor import children, walk
from xpiler.platforms import cuda, docs, hip, mlu
from xpiler.platforms import registry as R
from xpiler.platforms.meaning import execute
from xpiler.platforms.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
SIGS = [sig for i in REGISTRY.all() for sig in i.signatures()]
SIG_IDS = [f"{s.platform}:{s.name}:{len(s.params)}" for s in SIGS]
rng = np.random.default_rng(20261121)


def intr(platform, name):
    i = R.lookup(platform, name)
    assert i is not None, f"{platform} {name} not registered"
    return i


# --------------------------------------------------------------------------- structure
def test_every_platform_registers_its_intrinsics():
    counts = {p: len(REGISTRY.all(p)) for p in ("mlu", "cuda", "hip", "cpu")}
    assert counts["mlu"] >= 100 and counts["cpu"] >= 40
    assert counts["cuda"] >= 25 and counts["hip"] >= 25


def test_names_are_unique_and_tables_keyed_by_name():
    for platform, table in REGISTRY.by_platform.items():
        for name, i in table.items():
            assert i.name == name and i.platform == platform
            assert all(o.name == name for o in i.overloads)
        assert len(set(table)) == len(table)


def test_duplicate_registration_is_rejected():
    dup = intr("mlu", "__bang_add")
    with pytest.raises(ValueError, match="twice"):
        REGISTRY.add(dup)


BENCHMARK_BUILTINS = {
    "mlu": """__bang_add __bang_sub __bang_mul __bang_div __bang_mul_const __bang_add_const
              __bang_recip __bang_active_recip __bang_sqrt __bang_active_exp __bang_active_relu
              __bang_active_sigmoid __bang_sigmoid __bang_active_gelup __bang_active_sign
              __bang_sin __bang_write_zero __bang_sumpool __bang_avgpool __bang_maxpool
              __bang_minpool __bang_conv __bang_mlp __bang_matmul __bang_transpose __memset_nram
              __bang_max __bang_min __bang_reduce_sum __bang_maxequal __bang_minequal
              __bang_cycle_add __bang_write_value __bang_active_tanh __bang_active_log
              __bang_active_sqrt __bang_active_rsqrt __bang_active_abs __bang_half2float
              __bang_float2half __bang_float2int32 __bang_select __bang_collect __bang_square
              __bang_pad __bang_reshape_filter __bang_gt __bang_eq""",
    "cpu": """_mm512_dpbusd_epi32 _mm_dpbusds_epi32 _mm512_dpwssds_epi32 _mm512_dpwssd_epi32
              _mm512_loadu_si512 _mm512_load_si512 _mm512_storeu_si512 _mm512_store_si512
              _mm512_setzero_si512 _mm_loadu_si128 _mm_storeu_si128 _mm_setzero_si128
              _mm512_dpbusds_epi32 _mm256_dpbusd_epi32 _mm512_add_epi32 _mm512_reduce_add_epi32
              _mm512_loadu_ps _mm512_fmadd_ps _mm512_storeu_ps _mm512_set1_ps _mm512_reduce_add_ps""",
    "cuda": """wmma::fill_fragment wmma::load_matrix_sync wmma::mma_sync wmma::store_matrix_sync
               __shfl_sync __shfl_xor_sync __ballot_sync atomicAdd __float2half __half2float""",
    "hip": "__builtin_amdgcn_mfma_f32_16x16x4f32 __shfl __shfl_xor __ballot atomicAdd",
}


@pytest.mark.parametrize("platform", sorted(BENCHMARK_BUILTINS))
def test_required_intrinsics_are_registered(platform):
    missing = [n for n in BENCHMARK_BUILTINS[platform].split() if R.lookup(platform, n) is None]
    assert not missing


def test_every_builtin_of_the_bang_emulator_is_registered():
    header = ROOT / "xpiler/verify/runtime/bang_emu.h"
    if not header.exists():
        pytest.skip("BANG emulator not present")
    text = header.read_text()
    names = set(re.findall(r"XPILER_BANG_[A-Z0-9]+\((__bang_[a-z0-9_]+)", text))
    names |= set(re.findall(r"inline [\w<>:* ]+ (__bang_\w+|__memset_nram|__gdramset|__nramset\w*)\(", text))
    for base in re.findall(r"XPILER_BANG_ROUND_FAMILY\((__bang_\w+),", text):
        names |= {base + s for s in ("", "_rn", "_tz", "_rd", "_ru", "_dn")}
    assert len(names) > 100
    assert sorted(n for n in names if R.lookup("mlu", n) is None) == []


def test_resolve_picks_overloads_by_arity_and_argument_types():
    ptr = T.PointerType(T.F32)
    assert R.resolve("mlu", "__bang_div", 4, (ptr, ptr, ptr, T.I32)).params[2].role == "in"
    assert R.resolve("mlu", "__bang_div", 4, (ptr, ptr, T.F64, T.I32)).params[2].role == "scalar"
    div5 = R.resolve("mlu", "__bang_div", 5)
    assert [p.role for p in div5.params] == ["out", "in", "in", "out", "scalar"]
    assert div5.written_args == (0, 3) and div5.read_args == (1, 2)
    assert R.resolve("mlu", "__bang_sumpool", 7).name == "__bang_sumpool"
    assert R.resolve("mlu", "__bang_sumpool", 6) is None
    assert R.resolve("cuda", "wmma::load_matrix_sync", 3) is not None
    assert R.resolve("cuda", "nonexistent", 3) is None


def test_meaning_for_call_substitutes_arguments_and_picks_the_overload():
    ptr = T.PointerType(T.F32, "nram")
    x, y = N.Var("x", ptr), N.Var("y", ptr)
    call = N.Call("__bang_div", (x, x, N.Const(2048, T.I32), N.Const(128, T.I32)))
    stmt = R.meaning_for_call("mlu", call)
    names = {n.name for n in walk(stmt) if isinstance(n, N.Var)}
    assert {"x"} <= names and not {"dst", "src", "value", "n"} & names
    assert any(isinstance(n, N.Cast) and n.value == N.Const(2048, T.I32) for n in walk(stmt))
    vcall = N.Call("__bang_div", (x, x, y, N.Const(128, T.I32)))
    assert "y" in {n.name for n in walk(R.meaning_for_call("mlu", vcall)) if isinstance(n, N.Var)}
    acc = N.Var("acc", cpu_m512i())
    s2 = R.meaning_for_call("cpu", N.Call("_mm512_setzero_si512", ()), result=acc)
    assert "acc" in {n.name for n in walk(s2) if isinstance(n, N.Var)}
    assert R.meaning_for_call("mlu", N.Call("printf", ())) is None


def cpu_m512i():
    from xpiler.platforms import cpu
    return cpu.INT_VECTORS[512]


def test_omitted_arguments_take_their_defaults():
    pool = intr("mlu", "__bang_sumpool")
    names = [p.name for p in pool.params]
    args = {n: N.Var(n, T.I32) for n in names[:7]}
    stmt = pool.meaning_ir(args)
    used = {n.name for n in walk(stmt) if isinstance(n, N.Var)}
    assert "stride_x" not in used and "stride_y" not in used  # replaced by the kernel sizes
    assert {"stride_x", "stride_y"} <= {n.name for n in walk(pool.meaning_ir()) if isinstance(n, N.Var)}


def test_parameter_types_roles_and_constraints_are_well_formed():
    for s in SIGS:
        assert s.doc and not s.doc.endswith(".")
        for p in s.params:
            assert isinstance(p.dtype, T.Type)
            assert p.scope in T.SCOPES
            assert all(isinstance(a, T.Type) for a in p.alt_dtypes)
        for c in s.constraints:
            assert isinstance(c, (str, R.Constraint)) and str(c)
        assert s.collective in ("", "warp", "wave")
        assert s.cost > 0


def test_bang_vector_operands_are_nram_and_filters_wram():
    for name in ("__bang_add", "__bang_active_exp", "__bang_sumpool", "__bang_transpose"):
        assert all(p.scope == "nram" for p in intr("mlu", name).params if p.role != "scalar")
    for name, filt in (("__bang_mlp", "filter"), ("__bang_matmul", "rhs"), ("__bang_conv", "filter")):
        assert {p.name: p.scope for p in intr("mlu", name).params}[filt] == "wram"


# --------------------------------------------------------------------------- roles vs meanings
def _root(e):
    """The variable an address expression is based on (p, p + k, (T*)p, &v, v.x)."""
    while True:
        if isinstance(e, N.Var):
            return e.name
        if isinstance(e, N.Cast):
            e = e.value
        elif isinstance(e, N.AddressOf):
            e = e.value
        elif isinstance(e, N.Load):
            e = e.base
        elif isinstance(e, N.Member):
            e = e.base
        elif isinstance(e, N.Binary) and e.op in "+-":
            e = e.lhs if not isinstance(e.lhs, N.Const) else e.rhs
        else:
            return None


def accesses(top):
    """(stored roots, loaded roots). A Load/Deref evaluated as a value reads its root; an
    assignment to ``x[i]`` / ``x`` stores ``x`` (and reads it for ``+=``); a by-value
    vector or fragment used as a value is read. Bases in address position (``x`` in
    ``x[i]``, ``(T*)&v``, ``p + k``) are not reads by themselves."""
    stores, loads = set(), set()

    def read(e):
        if isinstance(e, (N.Load, N.Deref)):
            loads.add(_root(e))
            if isinstance(e, N.Load):
                address(e.base)
                read(e.index)
            else:
                address(e.pointer)
            return
        if isinstance(e, N.Var) and isinstance(e.dtype, (T.VectorType, T.FragmentType)):
            loads.add(e.name)
        for ch in children(e):
            if isinstance(ch, N.Expr):
                read(ch)

    def address(e):
        if isinstance(e, N.Load):  # a row of a multi-dimensional array
            address(e.base)
            read(e.index)
        elif isinstance(e, (N.Cast, N.AddressOf)):
            address(e.value)
        elif isinstance(e, N.Binary) and e.op in "+-":
            address(e.lhs)
            read(e.rhs)
        elif not isinstance(e, N.Var):
            read(e)

    def visit(s):
        if isinstance(s, N.Assign):
            root = _root(s.target)
            stores.add(root)
            if s.op != "=":
                loads.add(root)
            if isinstance(s.target, N.Load):
                address(s.target.base)
                read(s.target.index)
            read(s.value)
            return
        for ch in children(s):
            if isinstance(ch, N.Expr):
                read(ch)
            elif isinstance(ch, N.Stmt):
                visit(ch)

    visit(top)
    return stores, loads


@pytest.mark.parametrize("sig", SIGS, ids=SIG_IDS)
def test_meaning_exists_and_roles_agree(sig):
    stmt = sig.meaning_ir()
    assert isinstance(stmt, N.Stmt), f"{sig.name} has no meaning"
    stores, loads = accesses(stmt)
    for p in sig.params:
        if p.role == "out":
            assert p.name in stores and p.name not in loads, p.name
        elif p.role == "in":
            assert p.name in loads and p.name not in stores, p.name
        elif p.role == "inout":
            assert p.name in stores and p.name in loads, p.name
        else:
            assert p.name not in stores, p.name
    if sig.returns is not None:
        assert "result" in stores
    else:
        assert "result" not in stores


@pytest.mark.parametrize("sig", SIGS, ids=SIG_IDS)
def test_meaning_locals_do_not_shadow_parameters(sig):
    stmt = sig.meaning_ir()
    params = {p.name for p in sig.params} | {"result"}
    local = [n.name for n in walk(stmt) if isinstance(n, N.Decl)] + \
        [n.var for n in walk(stmt) if isinstance(n, N.For)]
    assert not params & set(local)


@pytest.mark.parametrize("sig", SIGS, ids=SIG_IDS)
def test_meaning_uses_only_its_parameters_and_locals(sig):
    stmt = sig.meaning_ir()
    bound = {p.name for p in sig.params} | {"result"} | set(R.facts(sig.platform).constants)
    bound |= {n.name for n in walk(stmt) if isinstance(n, N.Decl)}
    bound |= {n.var for n in walk(stmt) if isinstance(n, N.For)}
    free = {n.name for n in walk(stmt) if isinstance(n, N.Var)} - bound
    assert free <= {"INFINITY"}, free


def test_role_check_catches_a_wrong_role():
    bad = R.Intrinsic("mlu", "bad", (R.IntrinsicParam("dst", T.F32, "in", "nram"),
                                     R.IntrinsicParam("n", T.I32, "scalar")),
                      "writes its input", intr("mlu", "__bang_write_zero").meaning)
    stores, _ = accesses(bad.meaning_ir())
    assert "dst" in stores  # so the parametrized test above would fail for it


# --------------------------------------------------------------------------- facts and docs
def test_platform_facts():
    assert R.facts("cuda").lanes == 32 and R.facts("hip").lanes == 64
    assert R.facts("cuda").barriers["block"] == "__syncthreads"
    assert set(R.facts("mlu").on_chip_scopes()) == {"nram", "wram", "sram"}
    assert "shared" in R.facts("hip").on_chip_scopes()
    assert "clusterId" in R.facts("mlu").index_values and "threadIdx.x" in R.facts("cuda").index_values
    assert R.facts("mlu").default_launch()["task_dim"] == [16, 1, 1]
    assert R.facts("cuda").limits()["warp_size"] == 32
    f = R.facts("cuda")
    assert f.math_return_type("expf") == T.F32
    assert f.math_return_type("sqrt", (T.F32,)) == T.F32
    assert f.math_return_type("sqrt", (T.I32,)) == T.F64
    assert f.math_return_type("max", (T.I32, T.I32)) == T.I32
    assert f.math_return_type("__half2float") == T.F32
    assert R.facts("cpu").math_return_type("std::lround") == T.I64


def test_generated_reference_lists_everything_and_is_current():
    text = docs.render()
    for s in SIGS:
        assert f"`{s.name}`" in text
    assert "[UNCERTAIN]" in text and "```c" in text
    committed = ROOT / "docs" / "intrinsics.md"
    assert committed.exists(), "run: python -m xpiler.platforms.docs > docs/intrinsics.md"
    assert committed.read_text() == text, "docs/intrinsics.md is stale: regenerate it"


# =========================================================================== numerics
CHECKS = {}  # (platform, name) -> check function; test_every_intrinsic_is_checked needs all


def checks(platform, *names):
    def deco(fn):
        for n in names:
            CHECKS[(platform, n)] = fn
        return fn
    return deco


def f32(*shape, lo=-3.0, hi=3.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def close(got, want, rtol=2e-6, atol=1e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- MLU elementwise
def _gelu_erf(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


UNARY_REF = {  # stem: (reference in float64, input range)
    "exp": (np.exp, (-4, 4)), "relu": (lambda x: np.maximum(x, 0), (-3, 3)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), (-6, 6)), "gelu_tanh": (_gelu_tanh, (-4, 4)),
    "gelu": (_gelu_erf, (-4, 4)), "sign": (np.sign, (-3, 3)), "recip": (lambda x: 1 / x, (0.1, 4)),
    "sqrt": (np.sqrt, (0, 9)), "rsqrt": (lambda x: 1 / np.sqrt(x), (0.1, 9)), "tanh": (np.tanh, (-3, 3)),
    "log": (np.log, (0.01, 9)), "abs": (np.abs, (-3, 3)), "sin": (np.sin, (0, 4 * math.pi)),
    "cos": (np.cos, (0, 4 * math.pi)), "square": (np.square, (-3, 3)), "floor": (np.floor, (-3, 3)),
    "not": (lambda x: (x == 0).astype(np.float64), (-1, 1)),
}


def _unary_stem(name):
    stem = name.replace("__bang_", "").replace("active_", "")
    if name == "__bang_active_gelu":
        return "gelu_tanh"
    if name in ("__bang_active_gelup", "__bang_gelu"):
        return "gelu"
    return stem[:-2] if stem.endswith("hp") else stem


@checks("mlu", *mlu.UNARY)
def check_unary(i):
    ref, (lo, hi) = UNARY_REF[_unary_stem(i.name)]
    x = f32(67, lo=lo, hi=hi)
    x[:3] = [0.0, lo, hi] if i.name.endswith(("sign", "relu", "not", "floor")) else x[:3]
    dst = np.full(67, 7, np.float32)
    execute(i, dst, x, 64)
    close(dst[:64], ref(x[:64].astype(np.float64)).astype(np.float32), rtol=4e-6, atol=2e-6)
    assert (dst[64:] == 7).all()  # nothing past n


BINARY_REF = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maxequal": np.maximum,
              "minequal": np.minimum, "maximum": np.maximum, "minimum": np.minimum,
              "div": np.divide, "gt": np.greater, "ge": np.greater_equal, "lt": np.less,
              "le": np.less_equal, "eq": np.equal, "ne": np.not_equal,
              "and": lambda a, b: (a != 0) & (b != 0), "or": lambda a, b: (a != 0) | (b != 0),
              "xor": lambda a, b: (a != 0) ^ (b != 0)}


@checks("mlu", *mlu.BINARY, "__bang_div")
def check_binary(i):
    a, b = f32(40), f32(40)
    b[b == 0] = 1
    a[:5] = b[:5]  # equal elements for eq/ne/ge/le
    a[5:8] = 0
    dst = np.zeros(40, np.float32)
    execute(i.signatures()[0], dst, a, b, 40)
    want = BINARY_REF[i.name[len("__bang_"):]](a, b).astype(np.float32)
    np.testing.assert_array_equal(dst, want)  # one float32 operation: exact


SCALAR_REF = {"add_const": np.add, "add_scalar": np.add, "sub_scalar": np.subtract,
              "mul_const": np.multiply, "mul_scalar": np.multiply, "div_scalar": np.divide,
              "maxeq_scalar": np.maximum, "mineq_scalar": np.minimum, "gt_scalar": np.greater,
              "ge_scalar": np.greater_equal, "lt_scalar": np.less, "le_scalar": np.less_equal,
              "eq_scalar": np.equal, "ne_scalar": np.not_equal}


@checks("mlu", *mlu.SCALAR)
def check_scalar(i):
    x = f32(33)
    value = 0.7  # a double argument: converted to the element type first
    x[0] = np.float32(value)
    dst = np.zeros(33, np.float32)
    execute(i, dst, x, value, 33)
    want = SCALAR_REF[i.name[len("__bang_"):]](x, np.float32(value)).astype(np.float32)
    np.testing.assert_array_equal(dst, want)


def test_bang_div_overloads_and_scratch():
    div = intr("mlu", "__bang_div")
    a, b = f32(16), f32(16, lo=0.5, hi=2)
    dst, tmp = np.zeros(16, np.float32), np.zeros(16, np.float32)
    execute(div.signatures()[2], dst, a, b, tmp, 16)
    np.testing.assert_array_equal(dst, a / b)
    assert np.isnan(tmp).all()  # scratch poisoned, like the emulator default
    execute(div.signatures()[1], dst, a, 2048, 16)
    np.testing.assert_array_equal(dst, a / np.float32(2048))


def test_bang_elementwise_in_place_and_half():
    x, y = f32(32), f32(32)
    want = x + y
    execute(intr("mlu", "__bang_add"), x, x, y, 32)  # dst == src0
    np.testing.assert_array_equal(x, want)
    h0, h1 = f32(32).astype(np.float16), f32(32).astype(np.float16)
    hd = np.zeros(32, np.float16)
    execute(intr("mlu", "__bang_mul"), hd, h0, h1, 32)
    np.testing.assert_array_equal(hd, (h0.astype(np.float32) * h1.astype(np.float32)).astype(np.float16))


@checks("mlu", *(f"__bang_cycle_{k}" for k in mlu.CYCLE))
def check_cycle(i):
    src, seg = f32(24), f32(6)
    seg[seg == 0] = 1
    dst = np.zeros(24, np.float32)
    execute(i, dst, src, seg, 24, 6)
    op = i.name[len("__bang_cycle_"):]
    want = BINARY_REF[op](src.reshape(4, 6), seg[None, :]).astype(np.float32).ravel()
    np.testing.assert_array_equal(dst, want)
    # dst == seg: the meaning copies seg before writing dst
    buf = np.zeros(24, np.float32)
    buf[:6] = seg
    execute(i, buf, src, buf, 24, 6)
    np.testing.assert_array_equal(buf, want)


@checks("mlu", "__bang_write_zero", "__bang_write_value", "__memset_nram", "__nramset",
        "__nramset_float", "__nramset_half", "__gdramset")
def check_fill(i):
    dst = np.full(20, 7, np.float32)
    if i.name == "__bang_write_zero":
        execute(i, dst, 16)
        want = 0.0
    else:
        execute(i, dst, 16, 2.5)
        want = 2.5
    assert (dst[:16] == want).all() and (dst[16:] == 7).all()


ROUND_REF = {"": np.rint, "_rn": np.rint, "_dn": np.rint, "_tz": np.trunc, "_rd": np.floor, "_ru": np.ceil}
F2I = [(b + s, d, sdt) for b, d, sdt in (("__bang_float2int32", np.int32, np.float32),
                                         ("__bang_float2int16", np.int16, np.float32),
                                         ("__bang_float2int8", np.int8, np.float32),
                                         ("__bang_half2int16", np.int16, np.float16),
                                         ("__bang_half2int8", np.int8, np.float16)) for s in ROUND_REF]


@checks("mlu", *(n for n, _, _ in F2I))
def check_float_to_int(i):
    _, dt, st = next(t for t in F2I if t[0] == i.name)
    suffix = i.name[i.name.rfind("_"):] if i.name.endswith(tuple(ROUND_REF)[1:]) else ""
    edges = [0.5, 1.5, 2.5, -0.5, -2.5, -1.7, 1.7, np.nan, 1e10, -1e10, 3e4, -3e4, 127.6, -128.6]
    with np.errstate(over="ignore"):  # +-1e10 is inf in half: saturates too
        x = np.concatenate([edges, rng.uniform(-300, 300, 20)]).astype(st)
    dst = np.zeros(x.size, dt)
    execute(i, dst, x, x.size)
    info = np.iinfo(dt)
    xf = x.astype(np.float32).astype(np.float64)
    want = np.where(np.isnan(xf), 0, np.clip(ROUND_REF[suffix](np.nan_to_num(xf)), info.min, info.max))
    np.testing.assert_array_equal(dst, want.astype(dt))


@checks("mlu", "__bang_half2float", "__bang_float2half", "__bang_float2half_rn", "__bang_int82float",
        "__bang_int162float", "__bang_int322float", "__bang_int82half", "__bang_int162half")
def check_exact_conversion(i):
    p = {q.name: q for q in i.params}
    from xpiler.ir.interp import np_dtype
    sdt, ddt = np_dtype(p["src"].dtype), np_dtype(p["dst"].dtype)
    x = (rng.uniform(-100, 100, 25) if sdt.kind == "f" else rng.integers(-100, 100, 25)).astype(sdt)
    dst = np.zeros(25, ddt)
    execute(i, dst, x, 25)
    np.testing.assert_array_equal(dst, x.astype(np.float32).astype(ddt))


@checks("mlu", "__bang_max", "__bang_argmax", "__bang_min", "__bang_argmin")
def check_extreme(i):
    x = f32(50)
    x[17] = 9.0 if "max" in i.name else -9.0
    x[30] = x[17]  # a tie: the first occurrence wins
    dst = np.zeros(4, np.float32)
    execute(i, dst, x, 50)
    assert dst[0] == x[17] and dst.view(np.uint32)[1] == 17


def test_bang_reduce_sum_sums_128_byte_segments():
    x = f32(70)
    dst = np.full(70, 7, np.float32)
    execute(intr("mlu", "__bang_reduce_sum"), dst, x, 70)
    close(dst[[0, 32, 64]], [x[:32].sum(), x[32:64].sum(), x[64:].sum()], rtol=1e-5, atol=1e-5)
    assert (np.delete(dst, [0, 32, 64]) == 7).all()


CHECKS[("mlu", "__bang_reduce_sum")] = lambda i: test_bang_reduce_sum_sums_128_byte_segments()


@checks("mlu", "__bang_count")
def check_count(i):
    x = f32(40)
    x[::3] = 0
    assert execute(i, x, 40) == np.count_nonzero(x)


@checks("mlu", "__bang_collect", "__bang_select")
def check_pack(i):
    src, mask = f32(30), (rng.uniform(0, 1, 30) > 0.5).astype(np.float32)
    dst = np.zeros(64, np.float32)
    execute(i, dst, src, mask, 30)
    kept = src[mask != 0]
    if i.name == "__bang_collect":
        np.testing.assert_array_equal(dst[:kept.size], kept)
    else:
        assert dst.view(np.uint32)[0] == kept.size
        np.testing.assert_array_equal(dst[32:32 + kept.size], kept)  # 128 bytes in


def pool_ref(kind, src, C, H, W, kh, kw, sx, sy):
    x = src.reshape(H, W, C).astype(np.float64)
    ho, wo = (H - kh) // sy + 1, (W - kw) // sx + 1
    out = np.zeros((ho, wo, C))
    for oh in range(ho):
        for ow in range(wo):
            win = x[oh * sy:oh * sy + kh, ow * sx:ow * sx + kw, :]
            out[oh, ow] = {"sum": win.sum((0, 1)), "avg": win.mean((0, 1)),
                           "max": win.max((0, 1)), "min": win.min((0, 1))}[kind]
    return out.ravel()


@checks("mlu", "__bang_sumpool", "__bang_avgpool", "__bang_maxpool", "__bang_minpool")
def check_pool(i):
    kind = i.name[len("__bang_"):-len("pool")]
    C, H, W = 3, 7, 8
    src = f32(C * H * W)
    for args in ((2, 3, 3, 2), (2, 3)):  # stride_x=3 (W) != stride_y=2 (H); 7-arg: stride = kernel
        kh, kw = args[:2]
        sx, sy = args[2:] if len(args) == 4 else (kw, kh)
        want = pool_ref(kind, src, C, H, W, kh, kw, sx, sy)
        dst = np.zeros(want.size + 3, np.float32)
        execute(i, dst, src, C, H, W, *args)
        close(dst[:want.size], want, rtol=1e-5, atol=1e-5)


def test_sumpool_reduction_use_in_place():
    x = f32(100)
    want = x.astype(np.float64).sum()
    execute(intr("mlu", "__bang_sumpool"), x, x, 1, 1, 100, 1, 100, 1, 1)  # gemv's idiom
    close(x[0], want, rtol=1e-5, atol=1e-5)


@checks("mlu", "__bang_pad")
def check_pad(i):
    C, H, W = 2, 3, 4
    src = f32(C * H * W)
    dst = np.full((H + 3) * (W + 3) * C, 7, np.float32)
    execute(i, dst, src, C, H, W, 1, 2, 2, 1)
    want = np.pad(src.reshape(H, W, C), ((1, 2), (2, 1), (0, 0)))
    np.testing.assert_array_equal(dst, want.ravel())


@checks("mlu", "__bang_matmul")
def check_matmul(i):
    M, K, N_ = 3, 5, 4
    a, b = f32(M * K), f32(K * N_)
    dst = np.zeros(M * N_, np.float32)
    execute(i, dst, a, b, M, K, N_)
    close(dst, (a.reshape(M, K).astype(np.float64) @ b.reshape(K, N_)).ravel(), rtol=1e-5, atol=1e-5)
    ai = rng.integers(-128, 128, M * K).astype(np.int8)
    bi = rng.integers(-128, 128, K * N_).astype(np.int8)
    execute(i, dst, ai, bi, M, K, N_, 2)  # fixed point: x 2^pos
    np.testing.assert_array_equal(dst, 4 * (ai.reshape(M, K).astype(np.int64) @ bi.reshape(K, N_)).ravel())


@checks("mlu", "__bang_mlp")
def check_mlp(i):
    h, w = 6, 5
    src, filt = f32(h), f32(h * w)
    dst = np.zeros(w, np.float32)
    execute(i, dst, src, filt, h, w)
    close(dst, src.astype(np.float64) @ filt.reshape(h, w), rtol=1e-5, atol=1e-5)


@checks("mlu", "__bang_conv")
def check_conv(i):
    ci, H, W, kh, kw, sx, sy, co = 3, 5, 6, 2, 3, 2, 1, 4
    src, filt = f32(H * W * ci), f32(co * kh * kw * ci)
    ho, wo = (H - kh) // sy + 1, (W - kw) // sx + 1
    x, f = src.reshape(H, W, ci).astype(np.float64), filt.reshape(co, kh, kw, ci).astype(np.float64)
    want = np.zeros((ho, wo, co))
    for oh in range(ho):
        for ow in range(wo):
            win = x[oh * sy:oh * sy + kh, ow * sx:ow * sx + kw, :]
            want[oh, ow] = np.einsum("ijc,oijc->o", win, f)
    dst = np.zeros(want.size, np.float32)
    execute(i, dst, src, filt, ci, H, W, kh, kw, sx, sy, co)
    close(dst, want.ravel(), rtol=1e-5, atol=1e-5)


@checks("mlu", "__bang_transpose")
def check_transpose(i):
    src = f32(3 * 5)
    dst = np.zeros(15, np.float32)
    execute(i, dst, src, 3, 5)
    np.testing.assert_array_equal(dst, src.reshape(3, 5).T.ravel())
    inplace = src.copy()
    execute(i, inplace, inplace, 3, 5)  # aliasing: the meaning reads src into a temporary first
    np.testing.assert_array_equal(inplace, src.reshape(3, 5).T.ravel())


@checks("mlu", "__bang_reshape_filter")
def check_reshape_filter(i):
    src = f32(2 * 3 * 2 * 2)
    dst = np.zeros_like(src)
    execute(i, dst, src, 2, 3, 2, 2)
    np.testing.assert_array_equal(dst, src)


# --------------------------------------------------------------------------- CPU
def vec(values, dtype, nbytes):
    """A by-value x86 vector (the IR's int64 lanes) holding ``values`` of ``dtype``."""
    raw = np.asarray(values, dtype).tobytes()
    assert len(raw) == nbytes
    return np.frombuffer(raw, np.int64).copy()


def as_lanes(v, dtype):
    return np.asarray(v).view(dtype)


def vnni_ref(kind, src, a, b, lanes):
    if "bus" in kind:
        prod = (a.astype(np.int64) * b.astype(np.int64)).reshape(lanes, 4).sum(1)
    else:
        prod = (a.astype(np.int64) * b.astype(np.int64)).reshape(lanes, 2).sum(1)
    total = src.astype(np.int64) + prod
    if kind.endswith("s"):
        return np.clip(total, -2**31, 2**31 - 1).astype(np.int32)
    return total.astype(np.uint64).astype(np.uint32).view(np.int32)  # wrap


VNNI_NAMES = [f"{p}_{k}_epi32" for p in ("_mm", "_mm256", "_mm512")
              for k in ("dpbusd", "dpbusds", "dpwssd", "dpwssds")]


@checks("cpu", *VNNI_NAMES)
def check_vnni(i):
    nbytes = {"_mm": 16, "_mm256": 32, "_mm512": 64}[i.name[:i.name.index("_d")]]
    lanes, kind = nbytes // 4, i.name.split("_")[-2]
    src = rng.integers(-2**31, 2**31, lanes, dtype=np.int64).astype(np.int32)
    src[:2] = [2**31 - 10, -2**31 + 10]  # saturate / wrap in lanes 0 and 1
    if "bus" in kind:
        a = rng.integers(0, 256, nbytes).astype(np.uint8)
        b = rng.integers(-128, 128, nbytes).astype(np.int8)
        a[:8], b[:8] = 255, [127] * 4 + [-128] * 4  # lane 0 up, lane 1 down
    else:
        a = rng.integers(-32768, 32768, nbytes // 2).astype(np.int16)
        b = rng.integers(-32768, 32768, nbytes // 2).astype(np.int16)
        a[:4], b[:4] = -32768, [-32768, -32768, 32767, 32767]
        src[2] = 0
        a[4:6] = b[4:6] = -32768  # lane 2: 2^30 + 2^30 overflows int32 by itself
    got = execute(i, vec(src, np.int32, nbytes), vec(a, a.dtype, nbytes), vec(b, b.dtype, nbytes))
    want = vnni_ref(kind, src, a, b, lanes)
    np.testing.assert_array_equal(as_lanes(got, np.int32), want)
    if kind.endswith("s"):
        assert as_lanes(got, np.int32)[0] == 2**31 - 1 and as_lanes(got, np.int32)[1] == -2**31
    elif "wss" in kind:
        assert as_lanes(got, np.int32)[2] == -2**31  # 2^30 + 2^30 wrapped


MEM_NAMES = [f"{p}_{op}_si{w}" for p, w in (("_mm", 128), ("_mm256", 256), ("_mm512", 512))
             for op in ("loadu", "load", "storeu", "store", "setzero")]


@checks("cpu", *MEM_NAMES)
def check_int_memory(i):
    nbytes = int(i.name[i.name.rindex("si") + 2:]) // 8
    mem = rng.integers(0, 256, nbytes + 8).astype(np.uint8)
    if "setzero" in i.name:
        assert not as_lanes(execute(i), np.uint8).any()
    elif "load" in i.name:
        got = execute(i, mem[3:] if "loadu" in i.name else mem)
        np.testing.assert_array_equal(as_lanes(got, np.uint8), (mem[3:] if "loadu" in i.name else mem)[:nbytes])
    else:
        value = rng.integers(0, 256, nbytes).astype(np.uint8)
        out = np.zeros(nbytes + 8, np.uint8)
        execute(i, out, vec(value, np.uint8, nbytes))
        np.testing.assert_array_equal(out[:nbytes], value)
        assert not out[nbytes:].any()
    if "load_" in i.name or "store_" in i.name:
        assert any(getattr(c, "kind", "") == "align" and c.value == nbytes for c in i.constraints)


@checks("cpu", "_mm_add_epi32", "_mm256_add_epi32", "_mm512_add_epi32",
        "_mm_set1_epi32", "_mm256_set1_epi32", "_mm512_set1_epi32")
def check_int_arith(i):
    nbytes = {"_mm": 16, "_mm256": 32, "_mm512": 64}[i.name[:i.name.index("_", 1)]]
    a = rng.integers(-2**31, 2**31, nbytes // 4, dtype=np.int64).astype(np.int32)
    b = rng.integers(-2**31, 2**31, nbytes // 4, dtype=np.int64).astype(np.int32)
    if "set1" in i.name:
        assert (as_lanes(execute(i, -5), np.int32) == -5).all()
        return
    got = execute(i, vec(a, np.int32, nbytes), vec(b, np.int32, nbytes))
    np.testing.assert_array_equal(as_lanes(got, np.int32), (a.astype(np.int64) + b).astype(np.uint64).astype(np.uint32).view(np.int32))


@checks("cpu", "_mm512_reduce_add_epi32", "_mm512_reduce_add_ps")
def check_reduce(i):
    if i.name.endswith("epi32"):
        a = np.full(16, 2**30, np.int32)
        assert execute(i, vec(a, np.int32, 64)) == 0  # 16 * 2^30 wraps to 0
        a = rng.integers(-1000, 1000, 16).astype(np.int32)
        assert execute(i, vec(a, np.int32, 64)) == a.sum()
        return
    a = f32(16, lo=-1e4, hi=1e4)
    t = a.copy()
    for s in (8, 4, 2, 1):  # GCC's tree order
        t[:s] = t[:s] + t[s:2 * s]
    assert execute(i, vec(a, np.float32, 64)) == t[0]


@checks("cpu", "_mm512_loadu_ps", "_mm512_storeu_ps", "_mm512_setzero_ps", "_mm512_set1_ps",
        "_mm512_add_ps", "_mm512_sub_ps", "_mm512_mul_ps", "_mm512_fmadd_ps")
def check_float_simd(i):
    a, b, c = f32(16), f32(16), f32(16)
    op = i.name[len("_mm512_"):-len("_ps")]
    if op == "loadu":
        mem = f32(20)
        np.testing.assert_array_equal(execute(i, mem[2:]), mem[2:18])
    elif op == "storeu":
        out = np.zeros(17, np.float32)
        execute(i, out, vec(a, np.float32, 64))
        np.testing.assert_array_equal(out[:16], a)
        assert out[16] == 0
    elif op == "setzero":
        assert not execute(i).any()
    elif op == "set1":
        assert (execute(i, 1.25) == 1.25).all()
    elif op == "fmadd":
        got = execute(i, vec(a, np.float32, 64), vec(b, np.float32, 64), vec(c, np.float32, 64))
        np.testing.assert_array_equal(got, (a.astype(np.float64) * b + c).astype(np.float32))
    else:
        got = execute(i, vec(a, np.float32, 64), vec(b, np.float32, 64))
        np.testing.assert_array_equal(got, {"add": a + b, "sub": a - b, "mul": a * b}[op])


# --------------------------------------------------------------------------- CUDA WMMA
def _frag(use, elem, layout=""):
    return cuda.frag(use, elem, layout)


@checks("cuda", "wmma::fill_fragment", "wmma::load_matrix_sync", "wmma::mma_sync", "wmma::store_matrix_sync")
def check_wmma(i):
    ldm = 24  # wider than the tile, so a wrong stride shows
    A = f32(16, ldm).astype(np.float16)
    B = f32(16, ldm).astype(np.float16)
    load, mma = intr("cuda", "wmma::load_matrix_sync"), intr("cuda", "wmma::mma_sync")
    store, fill = intr("cuda", "wmma::store_matrix_sync"), intr("cuda", "wmma::fill_fragment")
    fa, fb = np.zeros(256, np.float16), np.zeros(256, np.float16)
    execute(load, fa, A.ravel(), ldm, types={"a": _frag("matrix_a", T.F16, "row_major")})
    np.testing.assert_array_equal(fa.reshape(16, 16), A[:, :16])
    execute(load, fb, B.ravel(), ldm, types={"a": _frag("matrix_b", T.F16, "col_major")})
    Bm = B[:, :16].T  # col_major: element (k, n) at ptr[k + n*ldm]
    np.testing.assert_array_equal(fb.reshape(16, 16), Bm)
    for acc_t, np_t in ((T.F32, np.float32), (T.F16, np.float16)):
        fc = np.zeros(256, np_t)
        execute(fill, fc, 0.5, types={"a": _frag("accumulator", acc_t)})
        assert (fc == 0.5).all()
        ct = _frag("accumulator", acc_t)
        execute(mma, fc, fa, fb, fc, types={"d": ct, "c": ct, "a": _frag("matrix_a", T.F16, "row_major"),
                                             "b": _frag("matrix_b", T.F16, "col_major")})
        want = A[:, :16].astype(np.float64) @ Bm.astype(np.float64) + 0.5
        close(fc.reshape(16, 16), want, rtol=2e-3 if np_t is np.float16 else 1e-5, atol=1e-2 if np_t is np.float16 else 1e-5)
    fc = np.arange(256, dtype=np.float32)
    for layout, expect in ((0, fc.reshape(16, 16)), (1, fc.reshape(16, 16).T)):
        mem = np.zeros(16 * ldm, np.float32)
        execute(store, mem, fc, ldm, layout)
        np.testing.assert_array_equal(mem.reshape(16, ldm)[:, :16], expect)
        back = np.zeros(256, np.float32)
        execute(load, back, mem, ldm, layout, types={"a": _frag("accumulator", T.F32)})
        np.testing.assert_array_equal(back, fc)


# --------------------------------------------------------------------------- warp collectives
def shfl_ref(kind, var, arg, width, lanes):
    out = np.empty_like(var)
    for l in range(lanes):
        base = (l // width) * width
        if kind == "idx":
            src = base + (arg[l] % width)
        elif kind == "up":
            src = l - arg if l - arg >= base else l
        elif kind == "down":
            src = l + arg if l + arg < base + width else l
        else:
            src = l ^ arg if (l ^ arg) < base + width else l
        out[l] = var[src]
    return out


SHFL = {"cuda": {"__shfl_sync": "idx", "__shfl_up_sync": "up", "__shfl_down_sync": "down", "__shfl_xor_sync": "xor"},
        "hip": {"__shfl": "idx", "__shfl_up": "up", "__shfl_down": "down", "__shfl_xor": "xor"}}


def _check_shuffle(i, lanes, masked):
    kind = SHFL[i.platform][i.name]
    var = f32(lanes)
    for width, arg in ((lanes, 3), (8, 5), (8, 9)):
        a = rng.integers(0, 64, lanes).astype(np.int32) if kind == "idx" else arg
        res = np.zeros(lanes, np.float32)
        args = ([0xFFFFFFFF] if masked else []) + [var, a, width]
        execute(i, *args, result=res)
        np.testing.assert_array_equal(res, shfl_ref(kind, var, a, width, lanes))


checks("cuda", *SHFL["cuda"])(lambda i: _check_shuffle(i, 32, True))
checks("hip", *SHFL["hip"])(lambda i: _check_shuffle(i, 64, False))


def _check_vote(i, lanes, masked):
    pred = (rng.uniform(0, 1, lanes) > 0.3).astype(np.int32)
    pred[5] = 0
    full = (1 << lanes) - 1
    for mask in ((full, full & ~(1 << 5)) if masked else (None,)):
        res = np.zeros(lanes, np.uint64)
        execute(i, *([mask] if masked else []), pred, result=res)
        m = full if mask is None else mask
        ballot = sum(1 << j for j in range(lanes) if pred[j] and m >> j & 1)
        want = {"ballot": ballot, "any": int(ballot != 0), "all": int(ballot == m)}[i.name.strip("_").split("_")[0]]
        assert (res == want).all()


checks("cuda", "__ballot_sync", "__any_sync", "__all_sync")(lambda i: _check_vote(i, 32, True))
checks("hip", "__ballot", "__any", "__all")(lambda i: _check_vote(i, 64, False))


@checks("cuda", "__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync")
def check_warp_reduce(i):
    value = rng.integers(-1000, 1000, 32).astype(np.int32)
    res = np.zeros(32, np.int32)
    execute(i, 0xFFFFFFFF, value, result=res)
    assert (res == {"add": value.sum(), "min": value.min(), "max": value.max()}[i.name.split("_")[3]]).all()


# --------------------------------------------------------------------------- atomics, half
ATOMIC_REF = {"atomicAdd": lambda o, v: o + v, "atomicSub": lambda o, v: o - v,
              "atomicExch": lambda o, v: v, "atomicMax": max, "atomicMin": min,
              "atomicAnd": lambda o, v: o & v, "atomicOr": lambda o, v: o | v,
              "atomicXor": lambda o, v: o ^ v, "atomicInc": lambda o, v: 0 if o >= v else o + 1,
              "atomicDec": lambda o, v: v if o == 0 or o > v else o - 1}


def _check_atomic(i):
    if i.name == "atomicCAS":
        for old, cmp in ((5, 5), (5, 6)):
            cell = np.array([old], np.int32)
            assert execute(i, cell, cmp, 9) == old
            assert cell[0] == (9 if old == cmp else old)
        return
    from xpiler.ir.interp import np_dtype
    dt = np_dtype(i.params[0].dtype)
    for old, val in ((5, 3), (3, 5), (0, 4), (9, 4)):
        cell = np.array([old], dt)
        assert execute(i, cell, val) == old
        assert cell[0] == ATOMIC_REF[i.name](dt.type(old), dt.type(val))


checks("cuda", *ATOMIC_REF, "atomicCAS")(_check_atomic)
checks("hip", *ATOMIC_REF, "atomicCAS")(_check_atomic)


def _check_half(i):
    if i.name == "__ldg":
        assert execute(i, np.array([2.5, 1.0], np.float32)) == 2.5
        return
    x = np.float32(1 + 2 ** -11)  # halfway between two halfs: rounds to even (1.0)
    if i.name.startswith("__float2half"):
        assert execute(i, x) == np.float16(1.0)
        assert execute(i, np.float32(1 + 3 * 2 ** -11)) == np.float16(1 + 2 ** -9)
    elif i.name == "__half2float":
        assert execute(i, np.float16(0.1)) == np.float32(np.float16(0.1))
    else:
        a, b = np.float16(0.1), np.float16(3.3)
        op = {"__hadd": np.add, "__hsub": np.subtract, "__hmul": np.multiply}[i.name]
        assert execute(i, a, b) == np.float16(op(np.float32(a), np.float32(b)))


for _p in ("cuda", "hip"):
    checks(_p, "__float2half", "__float2half_rn", "__half2float", "__hadd", "__hsub", "__hmul", "__ldg")(_check_half)


# --------------------------------------------------------------------------- HIP MFMA
@checks("hip", *(f"__builtin_amdgcn_mfma_{s}" for s in hip.SHAPES))
def check_mfma(i):
    m, n, k, blocks, kpl, _, i8 = hip.SHAPES[i.name[len("__builtin_amdgcn_mfma_"):]]
    regs, kg, G = m * n * blocks // 64, k // kpl, 64 // n // blocks
    if i8:
        A = rng.integers(-128, 128, (blocks, m, k)).astype(np.int8)
        B = rng.integers(-128, 128, (blocks, k, n)).astype(np.int8)
        C = rng.integers(-1000, 1000, (blocks, m, n)).astype(np.int32)
    else:
        A, B, C = f32(blocks, m, k), f32(blocks, k, n), f32(blocks, m, n)
        if kpl == 4:
            A, B = A.astype(np.float16), B.astype(np.float16)
    a = np.zeros((64, kpl), A.dtype)
    b = np.zeros((64, kpl), B.dtype)
    for lane in range(64):  # the documented operand layout
        for e in range(kpl):
            g = lane // m
            a[lane, e] = A[g // kg, lane % m, (g % kg) * kpl + e]
            g = lane // n
            b[lane, e] = B[g // kg, (g % kg) * kpl + e, lane % n]

    def d_coord(lane, r):
        g = lane // n
        return g // G, (r // 4) * 4 * G + 4 * (g % G) + r % 4, lane % n

    c = np.zeros(64 * regs, C.dtype)
    for lane in range(64):
        for r in range(regs):
            c[lane * regs + r] = C[d_coord(lane, r)]
    res = np.zeros_like(c)
    a_arg = a.view(np.int32).ravel() if i8 else a.ravel()
    b_arg = b.view(np.int32).ravel() if i8 else b.ravel()
    execute(i, a_arg, b_arg, c, 0, 0, 0, result=res)
    D = A.astype(np.float64) @ B.astype(np.float64) + C
    got = np.full(D.shape, np.nan)
    for lane in range(64):
        for r in range(regs):
            got[d_coord(lane, r)] = res[lane * regs + r]
    close(got, D, rtol=1e-5, atol=1e-4)  # also: every D element was written exactly once


def test_mfma_16x16x4_matches_the_benchmark_thread_mapping():
    # lane = threadIdx.x + 16*threadIdx.y supplies A[m_base + x][kk + y], B[kk + y][n_base + x];
    # output row y*4 + i, column x.
    A, B = f32(16, 4), f32(4, 16)
    a = np.array([A[l % 16, l // 16] for l in range(64)], np.float32)
    b = np.array([B[l // 16, l % 16] for l in range(64)], np.float32)
    res = np.zeros(256, np.float32)
    execute(intr("hip", "__builtin_amdgcn_mfma_f32_16x16x4f32"), a, b, np.zeros(256, np.float32), 0, 0, 0, result=res)
    D = A.astype(np.float64) @ B
    for x in range(16):
        for y in range(4):
            close(res[(x + 16 * y) * 4:(x + 16 * y) * 4 + 4], D[y * 4:y * 4 + 4, x], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- coverage
@pytest.mark.parametrize("key", sorted(CHECKS), ids=[f"{p}:{n}" for p, n in sorted(CHECKS)])
def test_meaning_matches_numpy_reference(key):
    CHECKS[key](intr(*key))


@pytest.mark.parametrize("platform", ["mlu", "cpu", "cuda", "hip"])
def test_every_intrinsic_is_checked_numerically(platform):
    unchecked = sorted(i.name for i in REGISTRY.all(platform) if (platform, i.name) not in CHECKS)
    assert unchecked == []
