"""IR types: scalars, vectors, pointers, arrays, WMMA/MFMA fragments and opaque names.

Types are immutable values. Canonical scalar names are dialect-neutral (``float16``, not
``half``); printers choose each dialect's spelling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .nodes import Expr

SCALARS = (
    "void", "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64",
)

# Byte widths, used for sizeof() folding and buffer extents.
SCALAR_BYTES = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
}

# Memory scopes a pointer or array can live in. "" means "not stated" (a plain C pointer
# parameter of a kernel points to global memory; a local array lives in registers/stack).
SCOPES = ("", "global", "shared", "local", "nram", "wram", "sram", "ldram", "host")


class Type:
    """Base of all IR types."""

    __slots__ = ()


@dataclass(frozen=True)
class ScalarType(Type):
    name: str

    def __post_init__(self):
        if self.name not in SCALARS:
            raise ValueError(f"unknown scalar type {self.name!r}")

    @property
    def is_float(self) -> bool:
        return self.name in ("float16", "bfloat16", "float32", "float64")

    @property
    def is_int(self) -> bool:
        return self.name.startswith(("int", "uint")) or self.name == "bool"

    @property
    def is_signed(self) -> bool:
        return self.name.startswith("int") or self.is_float

    @property
    def bytes(self) -> int:
        return SCALAR_BYTES.get(self.name, 0)


@dataclass(frozen=True)
class VectorType(Type):
    """A SIMD value: HIP/GCC vector extension, CUDA float4, x86 __m512i."""

    elem: Type
    lanes: int
    name: str = ""  # the dialect's own spelling (float4, __m512i), "" for a GCC vector attribute

    @property
    def bytes(self) -> int:
        return byte_size(self.elem) * self.lanes


@dataclass(frozen=True)
class PointerType(Type):
    elem: Type
    scope: str = ""
    const: bool = False
    restrict: bool = False


@dataclass(frozen=True)
class ArrayType(Type):
    elem: Type
    shape: tuple["Expr", ...]  # expressions: variable-length arrays are allowed (BANG NRAM VLAs)
    scope: str = ""


@dataclass(frozen=True)
class FragmentType(Type):
    """A warp/wave-collective matrix operand (WMMA fragment)."""

    use: str  # matrix_a | matrix_b | accumulator
    m: "Expr"
    n: "Expr"
    k: "Expr"
    elem: Type
    layout: str = ""  # row_major | col_major | "" (accumulators)


@dataclass(frozen=True)
class NamedType(Type):
    """A type the IR does not model structurally (dim3, cudaError_t, a user struct...)."""

    name: str
    const: bool = False


VOID = ScalarType("void")
BOOL = ScalarType("bool")
I8, I16, I32, I64 = (ScalarType(n) for n in ("int8", "int16", "int32", "int64"))
U8, U16, U32, U64 = (ScalarType(n) for n in ("uint8", "uint16", "uint32", "uint64"))
F16, BF16, F32, F64 = (ScalarType(n) for n in ("float16", "bfloat16", "float32", "float64"))


def byte_size(t: Type) -> int:
    """Size in bytes of a scalar/vector/pointer type; 0 when unknown."""
    if isinstance(t, ScalarType):
        return t.bytes
    if isinstance(t, VectorType):
        return t.bytes
    if isinstance(t, PointerType):
        return 8
    return 0


def element_type(t: Type) -> Type | None:
    """What indexing a value of type ``t`` yields."""
    if isinstance(t, (PointerType, ArrayType)):
        if isinstance(t, ArrayType) and len(t.shape) > 1:
            return ArrayType(t.elem, t.shape[1:], t.scope)
        return t.elem
    if isinstance(t, VectorType):
        return t.elem
    return None


_RANK = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
         "float16", "bfloat16", "float32", "float64"]


def promote(a: Type | None, b: Type | None) -> Type | None:
    """C's usual arithmetic conversions, reduced to what kernels need."""
    if a is None or b is None:
        return a or b
    if isinstance(a, PointerType):
        return a
    if isinstance(b, PointerType):
        return b
    if isinstance(a, VectorType):
        return a
    if isinstance(b, VectorType):
        return b
    if not (isinstance(a, ScalarType) and isinstance(b, ScalarType)):
        return a
    ra, rb = _RANK.index(a.name) if a.name in _RANK else 0, _RANK.index(b.name) if b.name in _RANK else 0
    winner = a if ra >= rb else b
    # Integer promotion: anything narrower than int becomes int.
    if winner.is_int and _RANK.index(winner.name) < _RANK.index("int32"):
        return I32
    return winner


def type_str(t) -> str:
    """A short dialect-neutral spelling for reports: float32*, int8[256], float32x4."""
    from .nodes import Const, Var

    def dim(e):
        if e is None:
            return ""
        if isinstance(e, Const):
            return str(e.value)
        if isinstance(e, Var):
            return e.name
        return "?"

    if isinstance(t, ScalarType):
        return t.name
    if isinstance(t, VectorType):
        return t.name or f"{type_str(t.elem)}x{t.lanes}"
    if isinstance(t, PointerType):
        scope = f" {t.scope}" if t.scope else ""
        return ("const " if t.const else "") + type_str(t.elem) + "*" + scope
    if isinstance(t, ArrayType):
        return type_str(t.elem) + "".join(f"[{dim(d)}]" for d in t.shape) + (f" {t.scope}" if t.scope else "")
    if isinstance(t, FragmentType):
        return f"fragment<{t.use},{dim(t.m)}x{dim(t.n)}x{dim(t.k)},{type_str(t.elem)}{','+t.layout if t.layout else ''}>"
    if isinstance(t, NamedType):
        return t.name
    return "?"
