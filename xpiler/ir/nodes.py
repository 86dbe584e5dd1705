"""The kernel IR: immutable expression, statement, function and program nodes.

Every node is a frozen dataclass. ``span`` (source position) is metadata: it is excluded
from equality and from the structural hash, so a printed-and-reparsed program compares
equal to the original.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .types import Type


@dataclass(frozen=True)
class Span:
    file: str
    line: int  # 1-based
    col: int   # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def _span():
    return field(default=None, compare=False, repr=False)


class Node:
    __slots__ = ()


# --------------------------------------------------------------------------- expressions
class Expr(Node):
    __slots__ = ()


@dataclass(frozen=True)
class Const(Expr):
    value: Union[int, float, bool, str]
    dtype: Optional[Type] = None
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Var(Expr):
    name: str
    dtype: Optional[Type] = None
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Special(Expr):
    """A platform index value: threadIdx.x, blockIdx.y, blockDim.z, gridDim.x, warpSize,
    clusterId, coreId, taskId, taskDim, clusterDim, coreDim."""

    name: str
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # - + ! ~
    operand: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # + - * / % << >> & | ^ && || == != < <= > >=
    lhs: Expr
    rhs: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Select(Expr):
    cond: Expr
    then: Expr
    other: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Cast(Expr):
    dtype: Type
    value: Expr
    kind: str = "c"  # c | static | reinterpret | const | functional
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Load(Expr):
    """``base[index]``: a read when used as a value, the target of a store when assigned."""

    base: Expr
    index: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class AddressOf(Expr):
    value: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Deref(Expr):
    pointer: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Member(Expr):
    base: Expr
    field: str
    arrow: bool = False
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Call(Expr):
    """A call of a math function, intrinsic, device function or host API.

    ``func`` is the canonical name (``wmma::mma_sync`` whatever namespace spelling the
    source used); ``template_args`` holds explicit template arguments (types or exprs)."""

    func: str
    args: tuple[Expr, ...] = ()
    template_args: tuple[Union[Type, Expr], ...] = ()
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class SizeOf(Expr):
    of: Union[Type, Expr]
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class InitList(Expr):
    values: tuple[Expr, ...]
    span: Optional[Span] = _span()


# --------------------------------------------------------------------------- statements
class Stmt(Node):
    __slots__ = ()


@dataclass(frozen=True)
class Block(Stmt):
    body: tuple[Stmt, ...] = ()
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Decl(Stmt):
    """Declare a variable. ``scope`` is the memory space of arrays/buffers declared here
    (shared, nram, wram, sram, ...; "" = ordinary local)."""

    name: str
    dtype: Type
    init: Optional[Expr] = None
    scope: str = ""
    qualifiers: tuple[str, ...] = ()  # const, static, extern, volatile, alignas(N)...
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Assign(Stmt):
    target: Expr  # Var, Load, Member, Deref
    value: Expr
    op: str = "="  # = += -= *= /= %= <<= >>= &= |= ^=
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class ExprStmt(Stmt):
    """An expression evaluated for its effect: intrinsic calls, host API calls."""

    expr: Expr
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    then: Block
    other: Optional[Block] = None
    span: Optional[Span] = _span()


# Loop kinds: what a pass decided about a loop; the front-end produces "serial".
LOOP_KINDS = ("serial", "parallel", "unrolled", "vectorized", "bound")


@dataclass(frozen=True)
class For(Stmt):
    """A canonical counted loop: ``for (var = start; var <cmp> bound; var += step)``.

    ``declared`` says whether the loop declares ``var`` (``int i = 0``). ``axis`` names the
    parallel axis a "bound" loop is mapped to (threadIdx.x, taskId, ...)."""

    var: str
    dtype: Type
    start: Expr
    cmp: str  # < <= > >= !=
    bound: Expr
    step: Expr
    body: Block
    declared: bool = True
    kind: str = "serial"
    axis: str = ""
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class While(Stmt):
    cond: Expr
    body: Block
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Break(Stmt):
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Continue(Stmt):
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Return(Stmt):
    value: Optional[Expr] = None
    span: Optional[Span] = _span()


# Barrier scopes: block (__syncthreads), warp (__syncwarp), cluster (__sync_cluster),
# all (__sync_all), io / compute (BANG pipeline syncs).
BARRIER_SCOPES = ("block", "warp", "cluster", "all", "io", "compute")


@dataclass(frozen=True)
class Barrier(Stmt):
    scope: str
    args: tuple[Expr, ...] = ()  # e.g. the mask of __syncwarp(mask)
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Dma(Stmt):
    """An explicit copy between memory spaces (BANG ``__memcpy``): ``size`` bytes per
    segment; ``strides`` holds the strided forms' extra arguments in source order."""

    dst: Expr
    src: Expr
    size: Expr
    direction: str  # GDRAM2NRAM, NRAM2GDRAM, ...
    strides: tuple[Expr, ...] = ()
    is_async: bool = False
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Launch(Stmt):
    """A kernel launch from host code: ``kernel<<<config...>>>(args...)``."""

    kernel: str
    config: tuple[Expr, ...]  # cuda/hip: grid, block[, shmem[, stream]]; bang: dim, type, queue
    args: tuple[Expr, ...]
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Pragma(Stmt):
    text: str  # e.g. "unroll", "omp parallel for"
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class TypeAlias(Stmt):
    """``using name = type;`` / ``typedef type name;``"""

    name: str
    dtype: Type
    span: Optional[Span] = _span()


# --------------------------------------------------------------------------- functions
@dataclass(frozen=True)
class Param:
    name: str
    dtype: Type
    span: Optional[Span] = field(default=None, compare=False, repr=False)


FUNCTION_KINDS = ("kernel", "device", "host")


@dataclass(frozen=True)
class Function(Node):
    """A kernel (__global__ / __mlu_global__ / a CPU kernel entry), a device helper, or a
    host function (the C entry point that allocates, copies and launches)."""

    name: str
    params: tuple[Param, ...]
    ret: Type
    body: Block
    kind: str = "kernel"
    extern_c: bool = False
    qualifiers: tuple[str, ...] = ()  # __forceinline__, inline, static, ...
    launch_bounds: tuple[Expr, ...] = ()
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Define(Node):
    """An object-like ``#define NAME value`` kept so printed code stays readable."""

    name: str
    value: Optional[Expr]
    span: Optional[Span] = _span()


@dataclass(frozen=True)
class Program(Node):
    dialect: str  # cuda | hip | mlu | cpu
    defines: tuple[Define, ...] = ()
    globals: tuple[Stmt, ...] = ()  # top-level declarations and type aliases
    functions: tuple[Function, ...] = ()
    span: Optional[Span] = _span()

    def function(self, name: str) -> Function | None:
        for f in self.functions:
            if f.name == name:
                return f
        return None

    @property
    def kernels(self) -> tuple[Function, ...]:
        return tuple(f for f in self.functions if f.kind == "kernel")

    @property
    def host_functions(self) -> tuple[Function, ...]:
        return tuple(f for f in self.functions if f.kind == "host")
