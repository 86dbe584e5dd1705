"""z3 encodings of the IR's integer expressions, for the loop transformations' proofs.

C semantics where they differ from z3's: ``/`` and ``%`` truncate toward zero, ``>>`` of
a signed value floors. Integers are mathematical (no wrap-around): the proofs hold for
executions whose index arithmetic does not overflow, as C assumes of signed loops.
"""
from __future__ import annotations

import functools

import z3

from ...ir import nodes as N
from ...ir import types as T
from ...verify.extents import Z3_LOCK

TIMEOUT_MS = 3000


class Unencodable(Exception):
    """An expression z3 cannot state exactly (floats, memory reads, bit tricks)."""


def locked(fn):
    """z3's context is not thread-safe: every public entry point holds the shared lock
    while it builds and solves formulas."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with Z3_LOCK:
            return fn(*args, **kw)
    return wrapper


def _cdiv(a, b):
    # z3's Int division is Euclidean; C truncates toward zero.
    return z3.If(a >= 0, a / b, -((-a) / b))


class Encoder:
    """IR integer expressions -> z3. ``env`` maps names (loop variables of one iteration)
    to z3 terms; any other name goes to ``symbol`` (a loop-invariant unknown), which may
    raise Unencodable for names that vary."""

    def __init__(self, env: dict | None = None, symbol=None):
        self.env = dict(env or {})
        self.symbol = symbol or (lambda name: z3.Int(name))

    def with_env(self, **more) -> "Encoder":
        return Encoder({**self.env, **more}, self.symbol)

    def int(self, e: N.Expr):
        if isinstance(e, N.Const):
            if isinstance(e.value, bool) or isinstance(e.value, int):
                return z3.IntVal(int(e.value))
            raise Unencodable(e)
        if isinstance(e, N.Var):
            if e.name in self.env:
                return self.env[e.name]
            if isinstance(e.dtype, T.ScalarType) and e.dtype.is_float:
                raise Unencodable(e)
            return self.symbol(e.name)
        if isinstance(e, N.Special):
            return self.symbol(e.name)
        if isinstance(e, N.Cast):
            if isinstance(e.dtype, T.ScalarType) and e.dtype.is_int:
                return self.int(e.value)
            raise Unencodable(e)
        if isinstance(e, N.Unary):
            if e.op == "-":
                return -self.int(e.operand)
            if e.op == "+":
                return self.int(e.operand)
            if e.op == "!":
                return z3.If(self.bool(e.operand), 0, 1)
            raise Unencodable(e)
        if isinstance(e, N.Select):
            return z3.If(self.bool(e.cond), self.int(e.then), self.int(e.other))
        if isinstance(e, N.Call) and e.func.split("::")[-1] in ("max", "min") and len(e.args) == 2:
            a, b = self.int(e.args[0]), self.int(e.args[1])
            return z3.If(a >= b, a, b) if e.func.endswith("max") else z3.If(a <= b, a, b)
        if isinstance(e, N.Binary):
            if e.op in ("<", "<=", ">", ">=", "==", "!=", "&&", "||"):
                return z3.If(self.bool(e), 1, 0)
            a, b = self.int(e.lhs), self.int(e.rhs)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                return _cdiv(a, b)
            if e.op == "%":
                return a - b * _cdiv(a, b)
            if e.op in ("<<", ">>") and z3.is_int_value(z3.simplify(b)):
                p = 2 ** z3.simplify(b).as_long()
                return a * p if e.op == "<<" else a / p  # floor: an arithmetic shift
        raise Unencodable(e)

    def bool(self, e: N.Expr):
        if isinstance(e, N.Binary):
            if e.op in ("&&", "||"):
                a, b = self.bool(e.lhs), self.bool(e.rhs)
                return z3.And(a, b) if e.op == "&&" else z3.Or(a, b)
            if e.op in ("<", "<=", ">", ">=", "==", "!="):
                return compare(e.op, self.int(e.lhs), self.int(e.rhs))
        if isinstance(e, N.Unary) and e.op == "!":
            return z3.Not(self.bool(e.operand))
        return self.int(e) != 0


def compare(op: str, a, b):
    return {"<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b,
            "==": lambda: a == b, "!=": lambda: a != b}[op]()


def solve(*constraints):
    """("sat", model) | ("unsat", None) | ("unknown", None)."""
    s = z3.Solver()
    s.set("timeout", TIMEOUT_MS)
    s.add(*constraints)
    r = s.check()
    if r == z3.sat:
        return "sat", s.model()
    return ("unsat" if r == z3.unsat else "unknown"), None


def valid(claim) -> tuple[bool, str]:
    """Whether ``claim`` holds for every value of its free variables; else a
    counterexample (or "z3 gave up")."""
    r, model = solve(z3.Not(claim))
    if r == "unsat":
        return True, ""
    if r == "unknown":
        return False, "z3 could not decide it"
    shown = ", ".join(f"{d.name()}={model[d]}" for d in sorted(model.decls(), key=lambda d: d.name()))
    return False, f"counterexample: {shown}" if shown else "it is false"
