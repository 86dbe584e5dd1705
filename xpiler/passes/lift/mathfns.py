"""Math calls to their C99 spelling, which every target accepts (device code of CUDA/HIP,
the BANG scalar unit, host C++): `__expf` -> `expf`, `std::exp` -> `exp`, `max` on floats
-> `fmaxf`, half conversions -> casts."""
from __future__ import annotations

import dataclasses

from ...ir import nodes as N
from ...ir import types as T
from ...ir.typeinfer import type_of
from ...ir.visitor import Transformer

RENAMES = {
    "__expf": "expf", "__logf": "logf", "__sinf": "sinf", "__cosf": "cosf", "__tanf": "tanf",
    "__powf": "powf", "__exp10f": "exp10f", "__log2f": "log2f", "__fsqrt_rn": "sqrtf",
    "std::exp": "exp", "std::log": "log", "std::sqrt": "sqrt", "std::tanh": "tanh", "std::pow": "pow",
    "std::sin": "sin", "std::cos": "cos", "std::floor": "floor", "std::ceil": "ceil",
    "std::round": "round", "std::lround": "lround", "std::fabs": "fabs", "std::erf": "erf",
    "std::fmax": "fmax", "std::fmin": "fmin", "std::isnan": "isnan", "std::isinf": "isinf",
}
CONSTANT_CALLS = {
    "std::numeric_limits<float>::max": N.Var("FLT_MAX", T.F32),
    "std::numeric_limits<float>::infinity": N.Var("INFINITY", T.F32),
    "std::numeric_limits<float>::lowest": N.Unary("-", N.Var("FLT_MAX", T.F32)),
    "std::numeric_limits<float>::min": N.Var("FLT_MIN", T.F32),
    "std::numeric_limits<int>::max": N.Var("INT_MAX", T.I32),
    "std::numeric_limits<int>::min": N.Var("INT_MIN", T.I32),
}
CASTS = {"__float2half": T.F16, "__float2half_rn": T.F16, "__half2float": T.F32, "__int2float_rn": T.F32,
         "__float2int_rn": None, "__float2int_rz": T.I32}


class CanonicalMath(Transformer):
    def visit_Call(self, c: N.Call):
        if c.func in CONSTANT_CALLS and not c.args:
            return CONSTANT_CALLS[c.func]
        if c.func in CASTS and len(c.args) == 1:
            if CASTS[c.func] is None:
                return N.Call("lrintf", c.args, span=c.span)
            return N.Cast(CASTS[c.func], c.args[0], "c", span=c.span)
        if c.func == "__fdividef" and len(c.args) == 2:
            return N.Binary("/", c.args[0], c.args[1], span=c.span)
        if c.func in ("rsqrtf", "rsqrt") and len(c.args) == 1:
            return N.Binary("/", N.Const(1.0, T.F32), N.Call("sqrtf", c.args), span=c.span)
        if c.func in ("max", "min", "std::max", "std::min") and len(c.args) == 2:
            a, b = (type_of(x) for x in c.args)
            is_max = c.func.endswith("max")
            if any(isinstance(t, T.ScalarType) and t.is_float for t in (a, b)):
                return N.Call("fmaxf" if is_max else "fminf", c.args, span=c.span)
            op = ">" if is_max else "<"
            return N.Select(N.Binary(op, c.args[0], c.args[1]), c.args[0], c.args[1], span=c.span)
        if c.func in ("std::abs", "abs") and len(c.args) == 1:
            t = type_of(c.args[0])
            if isinstance(t, T.ScalarType) and t.is_float:
                return N.Call("fabsf" if t.name == "float32" else "fabs", c.args, span=c.span)
            return N.Call("abs", c.args, span=c.span)
        if c.func in RENAMES:
            return dataclasses.replace(c, func=RENAMES[c.func])
        return c


def canonical_math(node):
    return CanonicalMath()(node)
