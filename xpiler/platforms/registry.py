"""The intrinsic registry: each platform's special instructions, declared once.

An ``Intrinsic`` states its signature (parameters with dtype, role and memory scope), its
meaning as an IR loop nest over its parameters, its constraints and a cost hint. That
one definition serves the analyses (which arguments a call reads and writes), lifting
(detensorize: inline the meaning), lowering (tensorize: match loops against the meaning),
the emulator cross-checks and the LLM prompts' documentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from ..ir import nodes as N
from ..ir import types as T

ROLES = ("in", "out", "inout", "scalar")


@dataclass(frozen=True)
class IntrinsicParam:
    name: str
    dtype: T.Type  # element type for buffers; the value type for scalars
    role: str  # in | out | inout (buffers) | scalar (by-value arguments)
    scope: str = ""  # required memory scope of a buffer ("" = any)
    # Value used when a call omits this trailing argument (an Expr over the other
    # parameters' names, e.g. __bang_sumpool's strides default to the kernel sizes).
    default: Optional[N.Expr] = None
    # Other element types the intrinsic accepts here (C++ overloads: float and half).
    alt_dtypes: tuple[T.Type, ...] = ()

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"bad role {self.role!r} for {self.name}")


@dataclass(frozen=True)
class Intrinsic:
    platform: str  # cuda | hip | mlu | cpu
    name: str  # as called in source (canonical namespace spelling)
    params: tuple[IntrinsicParam, ...]
    doc: str  # one line: what it computes
    # The meaning: a function from the parameter names' IR variables to an IR statement
    # (usually a loop nest). None only for things that are not computations (e.g. a
    # pure synchronization), never as a shortcut.
    meaning: Optional[Callable[..., N.Stmt]] = None
    returns: Optional[T.Type] = None  # value-returning intrinsics (e.g. VNNI, MFMA)
    constraints: tuple = ()  # Constraint objects or strings; str() is the prompt-readable rule
    collective: str = ""  # "" | warp | wave: executes as a warp/wave-wide operation
    cost: float = 1.0  # relative cost hint per element for the cost model
    variadic_overloads: tuple[int, ...] = ()  # other accepted argument counts
    notes: str = ""  # [UNCERTAIN] decisions and sources
    # Overloads whose parameters differ in role, not just in trailing defaults (e.g.
    # __bang_div(dst, a, b, tmp, n) and __bang_div(dst, a, scalar, n)); pick one for a
    # call with ``for_arity`` / ``Registry.resolve``.
    overloads: tuple["Intrinsic", ...] = ()
    # a read-modify-write other threads may do to the same element at once (atomicAdd):
    # sequential code gets the update, and the loops that update in common stay serial
    atomic: bool = False

    @property
    def written_args(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self.params) if p.role in ("out", "inout"))

    @property
    def read_args(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self.params) if p.role in ("in", "inout"))

    @property
    def min_args(self) -> int:
        n = len(self.params)
        while n and self.params[n - 1].default is not None:
            n -= 1
        return n

    def signatures(self) -> tuple["Intrinsic", ...]:
        """This signature and its overloads."""
        return (self,) + self.overloads

    def for_arity(self, nargs: int, arg_types: tuple | None = None) -> "Intrinsic | None":
        """The signature a call with ``nargs`` arguments uses (None if none accepts it).
        Overloads of equal arity (``__bang_div(dst, a, b, n)`` / ``(dst, a, 2.0f, n)``)
        are told apart by ``arg_types``: a pointer/array argument selects a buffer
        parameter, anything else a scalar one; without types the first one wins."""
        fits = [s for s in self.signatures()
                if s.min_args <= nargs <= len(s.params) or nargs in s.variadic_overloads]
        if arg_types is not None and len(fits) > 1:
            def agrees(sig):
                return all((p.role == "scalar") == (not isinstance(t, (T.PointerType, T.ArrayType)))
                           for p, t in zip(sig.params, arg_types) if t is not None)
            fits = [s for s in fits if agrees(s)] or fits
        return fits[0] if fits else None

    def param_var(self, p: IntrinsicParam) -> N.Var:
        """The IR variable standing for parameter ``p`` in the meaning: buffers are
        pointers to their element type in their scope; fragments and by-value arguments
        have their own type."""
        if p.role != "scalar" and not isinstance(p.dtype, (T.FragmentType, T.PointerType)):
            return N.Var(p.name, T.PointerType(p.dtype, p.scope))
        return N.Var(p.name, p.dtype)

    def meaning_ir(self, args: Mapping[str, N.Expr] | None = None) -> N.Stmt | None:
        """The meaning as IR, with parameters bound to ``args`` (by name; missing ones
        become their own variables, omitted defaults their default expressions). A
        value-returning intrinsic's result is the variable ``result`` (overridable)."""
        if self.meaning is None:
            return None
        generic = args is None  # the full form: every parameter is its own variable
        args = dict(args or {})
        kw: dict[str, N.Expr] = {}
        for p in self.params:
            if p.name in args:
                kw[p.name] = args[p.name]
            elif p.default is not None and not generic:
                kw[p.name] = _subst(p.default, kw)  # a trailing argument the call omitted
            else:
                kw[p.name] = self.param_var(p)
        if self.returns is not None:
            kw["result"] = args.get("result", N.Var("result", self.returns))
        return self.meaning(**kw)


def _subst(e: N.Expr, env: Mapping[str, N.Expr]) -> N.Expr:
    from ..ir.visitor import Transformer

    class _S(Transformer):
        def visit_Var(self, v):
            return env.get(v.name, v)

    return _S()(e)


@dataclass(frozen=True)
class Constraint:
    """A checkable rule on a call. ``kind``: align (param address multiple of ``value``
    bytes), bytes_multiple (``param`` elements x element size multiple of ``value``
    bytes), multiple (the integer argument ``param`` is a multiple of ``value``), max /
    min (bounds on an integer argument), scope (stated by the parameter itself),
    relation (free text). ``advisory``: a documented or [UNCERTAIN] hardware rule that
    the emulator does not enforce; passes should honour it when they can, verification
    does not reject code that breaks it."""

    kind: str
    param: str
    value: Any = None
    text: str = ""
    advisory: bool = False

    def __str__(self) -> str:
        tag = " (advisory)" if self.advisory else ""
        return (self.text or f"{self.kind}({self.param}) = {self.value}") + tag


@dataclass
class Registry:
    by_platform: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # platform -> PlatformFacts

    def add(self, intrinsic: Intrinsic) -> Intrinsic:
        table = self.by_platform.setdefault(intrinsic.platform, {})
        if intrinsic.name in table:
            raise ValueError(f"{intrinsic.platform} intrinsic {intrinsic.name} registered twice")
        for o in intrinsic.overloads:
            if (o.platform, o.name) != (intrinsic.platform, intrinsic.name):
                raise ValueError(f"overload of {intrinsic.name} has another name")
        table[intrinsic.name] = intrinsic
        return intrinsic

    def resolve(self, platform: str, name: str, nargs: int,
                arg_types: tuple | None = None) -> Intrinsic | None:
        """The signature of ``name`` that a call with ``nargs`` arguments (of
        ``arg_types``, None where unknown) uses."""
        intr = self.lookup(platform, name)
        return None if intr is None else intr.for_arity(nargs, arg_types)

    def lookup(self, platform: str, name: str) -> Intrinsic | None:
        _load_platforms()
        return self.by_platform.get(platform, {}).get(name)

    def all(self, platform: str | None = None) -> list[Intrinsic]:
        _load_platforms()
        if platform is not None:
            return list(self.by_platform.get(platform, {}).values())
        return [i for table in self.by_platform.values() for i in table.values()]


REGISTRY = Registry()
_loaded = False


def _load_platforms():
    """Import the platform modules (each registers its intrinsics) on first use."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in ("cuda", "hip", "mlu", "cpu"):
        try:
            importlib.import_module(f"xpiler.platforms.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"xpiler.platforms.{mod}":
                raise


def lookup(platform: str, name: str) -> Intrinsic | None:
    return REGISTRY.lookup(platform, name)


def resolve(platform: str, name: str, nargs: int, arg_types: tuple | None = None) -> Intrinsic | None:
    return REGISTRY.resolve(platform, name, nargs, arg_types)


def _static_type(e: N.Expr) -> T.Type | None:
    """The type an argument expression visibly has (enough to pick an overload)."""
    if isinstance(e, (N.Var, N.Const)):
        return e.dtype
    if isinstance(e, N.Cast):
        return e.dtype
    if isinstance(e, N.AddressOf):
        return T.PointerType(T.VOID)
    if isinstance(e, N.Binary) and e.op in "+-":
        lt = _static_type(e.lhs)
        return lt if isinstance(lt, (T.PointerType, T.ArrayType)) else None
    if isinstance(e, N.Call) and e.func in C_MATH:
        return T.F64  # sqrt(256): a by-value number, which picks a scalar overload
    if isinstance(e, (N.Binary, N.Unary)) and not any(
            isinstance(x, (N.Var, N.Cast, N.AddressOf)) for x in (getattr(e, "lhs", None), getattr(e, "operand", None))):
        return T.F64  # arithmetic on constants
    return None


def meaning_for_call(platform: str, call: N.Call, result: N.Expr | None = None) -> N.Stmt | None:
    """The meaning of ``call`` with its arguments substituted (detensorization of one call;
    a value-returning intrinsic assigns ``result``). None if ``call`` is not an intrinsic of
    ``platform`` with a meaning. Warp/wave-collective meanings are in the warp view (see
    cuda.py): they describe the whole warp, so inlining them per thread is not valid."""
    sig = resolve(platform, call.func, len(call.args), tuple(_static_type(a) for a in call.args))
    if sig is None or sig.meaning is None:
        return None
    args = {p.name: a for p, a in zip(sig.params, call.args)}
    if sig.returns is not None and result is not None:
        args["result"] = result
    return sig.meaning_ir(args)


# --------------------------------------------------------------------------- platform facts
@dataclass(frozen=True)
class MemoryScope:
    name: str  # the IR scope (types.SCOPES)
    spelling: str  # declaration qualifier in the dialect ("" = none)
    on_chip: bool
    doc: str = ""


# A math function's return type: a Type, or ARG for "the (promoted) type of the first
# float argument" (C++ overloads such as sqrt(float) -> float), double for integers.
ARG = "arg"

# The C library as CUDA/HIP/C++ kernels use it. Platforms extend it.
C_MATH: dict[str, Union[T.Type, str]] = {
    **{f + "f": T.F32 for f in ("exp", "log", "sqrt", "tanh", "erf", "fabs", "floor", "ceil",
                               "sin", "cos", "tan", "pow", "round", "trunc", "fmod", "log2",
                               "exp2", "fmax", "fmin", "fma", "rsqrt", "atan", "erfc",
                               "sinh", "cosh", "log10", "ldexp", "atan2", "hypot", "cbrt")},
    **{f: ARG for f in ("exp", "log", "sqrt", "tanh", "erf", "fabs", "floor", "ceil", "sin",
                        "cos", "tan", "pow", "round", "trunc", "fmod", "log2", "exp2", "fmax",
                        "fmin", "fma", "atan", "erfc", "sinh", "cosh", "log10", "ldexp",
                        "atan2", "hypot", "cbrt", "abs", "max", "min")},
    "lround": T.I64, "llround": T.I64, "lroundf": T.I64,
}


@dataclass(frozen=True)
class PlatformFacts:
    """What passes need to know about a platform beyond its intrinsics. Numbers that
    live in platform_configs/<name>.toml (limits, default launch) are read from there,
    not repeated here."""

    name: str
    index_values: Mapping[str, str]  # Special name -> what it is
    barriers: Mapping[str, str]  # barrier scope -> spelling
    memory_scopes: tuple[MemoryScope, ...]
    lanes: int  # threads that execute an instruction together (warp/wave), 1 if none
    math_functions: Mapping[str, Union[T.Type, str]]
    constants: Mapping[str, Any] = field(default_factory=dict)  # named enum values
    index_dtype: T.Type = T.I32

    def scope(self, name: str) -> MemoryScope | None:
        return next((m for m in self.memory_scopes if m.name == name), None)

    def on_chip_scopes(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.memory_scopes if m.on_chip)

    def math_return_type(self, func: str, arg_types: tuple[T.Type, ...] = ()) -> T.Type | None:
        rt = self.math_functions.get(func)
        if rt != ARG:
            return rt
        floats = [t for t in arg_types if isinstance(t, T.ScalarType) and t.is_float]
        if func in ("abs", "max", "min") and arg_types and not floats:
            return T.promote(arg_types[0], arg_types[-1])
        return max(floats, key=lambda t: t.bytes) if floats else T.F64

    def config(self) -> dict:
        from . import config

        return config.load_platform_config(self.name)

    def default_launch(self) -> dict:
        """The launch for a kernel without host code ([launch] of the platform config)."""
        return self.config()["launch"]

    def limits(self) -> dict:
        return self.config()["limits"]


def register_facts(f: PlatformFacts) -> PlatformFacts:
    REGISTRY.facts[f.name] = f
    return f


def facts(platform: str) -> PlatformFacts:
    _load_platforms()
    return REGISTRY.facts[platform]
