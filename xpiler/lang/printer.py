"""The C-style printer shared by all dialects (IR -> readable source).

Modelled on tinygrad's C-style renderer: this base class prints C; each dialect is a
small subclass that states only what differs (kernel qualifier, memory-space qualifiers,
index-value spellings, barriers, type names, launches). Parenthesization follows C
precedence, so printed code has no redundant parentheses and re-parses to the same IR.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess

from ..ir import nodes as N
from ..ir import types as T

PREC = {
    "||": 4, "&&": 5, "|": 6, "^": 7, "&": 8, "==": 9, "!=": 9,
    "<": 10, "<=": 10, ">": 10, ">=": 10, "<<": 11, ">>": 11,
    "+": 12, "-": 12, "*": 13, "/": 13, "%": 13,
}
P_SELECT, P_UNARY, P_POSTFIX, P_ATOM = 3, 15, 16, 17


class CPrinter:
    dialect = "cpu"
    indent_unit = "  "
    kernel_qualifier = ""
    device_qualifier = ""
    scope_qualifiers: dict = {}
    barrier_spellings: dict = {}
    special_spellings: dict = {}
    type_spellings = {
        "void": "void", "bool": "bool", "int8": "int8_t", "int16": "int16_t", "int32": "int",
        "int64": "int64_t", "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t",
        "uint64": "uint64_t", "float16": "_Float16", "bfloat16": "__bf16", "float32": "float",
        "float64": "double",
    }

    # ------------------------------------------------------------------ program
    def program(self, prog: N.Program) -> str:
        parts = []
        for d in prog.defines:
            parts.append(f"#define {d.name}" + (f" {self.expr(d.value)}" if d.value is not None else ""))
        if prog.defines:
            parts.append("")
        for g in prog.globals:
            parts.extend(self.stmt(g, 0))
        if prog.globals:
            parts.append("")
        for f in prog.functions:
            parts.append(self.function(f))
            parts.append("")
        return "\n".join(parts).rstrip() + "\n"

    def function(self, f: N.Function) -> str:
        head = []
        if f.extern_c:
            head.append('extern "C"')
        head.extend(q for q in f.qualifiers if q in ("static", "inline"))
        if f.kind == "kernel" and self.kernel_qualifier:
            head.append(self.kernel_qualifier)
        elif f.kind == "device" and self.device_qualifier:
            head.append(self.device_qualifier)
            if "__host__" in f.qualifiers:
                head.append("__host__")
        head.extend(q for q in f.qualifiers if q not in ("static", "inline", "__host__"))
        ret = self.type_decl(f.ret, "").strip()
        head.append(ret)
        if f.launch_bounds:
            head.append(self.launch_bounds(f.launch_bounds))
        params = ", ".join(self.type_decl(p.dtype, p.name) for p in f.params)
        sig = " ".join(head) + f" {f.name}({params})"
        return sig + " " + self.block_text(f.body, 0)

    def launch_bounds(self, args) -> str:
        return "__launch_bounds__(" + ", ".join(self.expr(a) for a in args) + ")"

    # ------------------------------------------------------------------ types
    def scalar(self, t: T.ScalarType) -> str:
        return self.type_spellings[t.name]

    def base_type(self, t: T.Type) -> str:
        if isinstance(t, T.ScalarType):
            return self.scalar(t)
        if isinstance(t, T.VectorType):
            if t.name:
                return t.name
            elem = self.base_type(t.elem)
            return f"{elem} __attribute__((__vector_size__({t.lanes} * sizeof({elem}))))"
        if isinstance(t, T.NamedType):
            return ("const " if t.const else "") + t.name
        if isinstance(t, T.FragmentType):
            return self.fragment(t)
        if isinstance(t, (T.PointerType, T.ArrayType)):
            return self.type_decl(t, "").strip()
        raise TypeError(f"cannot print type {t!r}")

    def fragment(self, t: T.FragmentType) -> str:
        raise NotImplementedError(f"{self.dialect} has no WMMA fragments")

    def type_decl(self, t: T.Type, name: str) -> str:
        """A declaration of ``name`` with type ``t`` (handles pointer/array declarators)."""
        if isinstance(t, T.PointerType):
            inner = ("const " if t.const else "") + self.type_decl(t.elem, "").strip()
            restrict = " __restrict__" if t.restrict else ""
            return f"{inner} *{restrict.strip()}{' ' if restrict and name else ''}{name}" if restrict else f"{inner} *{name}"
        if isinstance(t, T.ArrayType):
            dims = "".join(f"[{self.expr(d) if d is not None else ''}]" for d in t.shape)
            return f"{self.type_decl(t.elem, '').strip()} {name}{dims}"
        return f"{self.base_type(t)} {name}".rstrip() if name else self.base_type(t)

    # ------------------------------------------------------------------ statements
    def block_text(self, b: N.Block, level: int) -> str:
        lines = ["{"]
        for s in b.body:
            lines.extend(self.stmt(s, level + 1))
        lines.append(self.indent_unit * level + "}")
        return "\n".join(lines)

    def stmt(self, s: N.Stmt, level: int) -> list[str]:
        ind = self.indent_unit * level
        method = getattr(self, "stmt_" + type(s).__name__)
        out = method(s, level)
        return [ind + line if i == 0 else line for i, line in enumerate(out.split("\n"))] if isinstance(out, str) else out

    def stmt_Block(self, s, level):
        return self.block_text(s, level)

    def stmt_Decl(self, s: N.Decl, level):
        quals = [q for q in s.qualifiers if q != "const"]
        if s.scope:
            quals.append(self.scope_qualifier(s.scope))
        if "const" in s.qualifiers:
            quals.append("const")
        text = " ".join(quals + [self.type_decl(s.dtype, s.name)])
        if s.init is not None:
            text += " = " + self.expr(s.init)
        return text + ";"

    def scope_qualifier(self, scope: str) -> str:
        if scope not in self.scope_qualifiers:
            raise ValueError(f"{self.dialect} has no memory scope {scope!r}")
        return self.scope_qualifiers[scope]

    def stmt_Assign(self, s: N.Assign, level):
        return f"{self.expr(s.target)} {s.op} {self.expr(s.value)};"

    def stmt_ExprStmt(self, s, level):
        return self.expr(s.expr) + ";"

    def stmt_If(self, s: N.If, level):
        text = f"if ({self.expr(s.cond)}) " + self.block_text(s.then, level)
        if s.other is not None:
            other = s.other
            if len(other.body) == 1 and isinstance(other.body[0], N.If):
                text += " else " + self.stmt_If(other.body[0], level)
            else:
                text += " else " + self.block_text(other, level)
        return text

    def stmt_For(self, s: N.For, level):
        init = (self.type_decl(s.dtype, s.var) if s.declared else s.var) + f" = {self.expr(s.start)}"
        step = s.step
        if isinstance(step, N.Const) and step.value == 1:
            upd = f"++{s.var}"
        elif isinstance(step, N.Const) and step.value == -1:
            upd = f"--{s.var}"
        elif isinstance(step, N.Const) and isinstance(step.value, (int, float)) and step.value < 0:
            upd = f"{s.var} -= {self.expr(N.Const(-step.value, step.dtype))}"
        elif isinstance(step, N.Unary) and step.op == "-":
            upd = f"{s.var} -= {self.expr(step.operand)}"
        else:
            upd = f"{s.var} += {self.expr(step)}"
        prefix = self.loop_annotation(s)
        bound = self._wrap(s.bound, PREC[s.cmp], right=True)
        text = f"for ({init}; {s.var} {s.cmp} {bound}; {upd}) " + self.block_text(s.body, level)
        return prefix + text if prefix else text

    def loop_annotation(self, s: N.For) -> str:
        return ""

    def stmt_While(self, s: N.While, level):
        return f"while ({self.expr(s.cond)}) " + self.block_text(s.body, level)

    def stmt_Break(self, s, level):
        return "break;"

    def stmt_Continue(self, s, level):
        return "continue;"

    def stmt_Return(self, s: N.Return, level):
        return "return;" if s.value is None else f"return {self.expr(s.value)};"

    def stmt_Barrier(self, s: N.Barrier, level):
        if s.scope not in self.barrier_spellings:
            raise ValueError(f"{self.dialect} has no {s.scope}-scope barrier")
        return f"{self.barrier_spellings[s.scope]}({', '.join(self.expr(a) for a in s.args)});"

    def stmt_Dma(self, s: N.Dma, level):
        raise ValueError(f"{self.dialect} has no DMA copies")

    def stmt_Launch(self, s: N.Launch, level):
        cfg = ", ".join(self.expr(c) for c in s.config)
        return f"{s.kernel}<<<{cfg}>>>({', '.join(self.expr(a) for a in s.args)});"

    def stmt_Pragma(self, s: N.Pragma, level):
        return s.text

    def stmt_TypeAlias(self, s: N.TypeAlias, level):
        dtype = s.dtype
        if isinstance(dtype, T.VectorType) and dtype.name == s.name:
            dtype = dataclasses.replace(dtype, name="")  # print the definition, not the alias
        return f"using {s.name} = {self.type_decl(dtype, '').strip()};"

    # ------------------------------------------------------------------ expressions
    def expr(self, e: N.Expr) -> str:
        return self._expr(e)[0]

    def _wrap(self, e, min_prec, right=False):
        text, prec = self._expr(e)
        if prec < min_prec or (right and prec == min_prec):
            return f"({text})"
        return text

    def _expr(self, e) -> tuple[str, int]:
        return getattr(self, "expr_" + type(e).__name__)(e)

    def expr_Const(self, e: N.Const):
        v = e.value
        if isinstance(v, bool):
            return ("true" if v else "false"), P_ATOM
        if isinstance(v, str):
            return v, P_ATOM
        if isinstance(v, float):
            text = repr(v)
            if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
                text += ".0"
            if isinstance(e.dtype, T.ScalarType) and e.dtype.name == "float32":
                text += "f"
            return text, (P_UNARY if v < 0 else P_ATOM)
        name = e.dtype.name if isinstance(e.dtype, T.ScalarType) else "int32"
        suffix = {"uint32": "u", "int64": "ll", "uint64": "ull"}.get(name, "")
        if name == "int64" and v >= 2**31:
            suffix = "ll"
        return f"{v}{suffix}", (P_UNARY if v < 0 else P_ATOM)

    def expr_Var(self, e: N.Var):
        return e.name, P_ATOM

    def expr_Special(self, e: N.Special):
        return self.special_spellings.get(e.name, e.name), P_ATOM

    def expr_Unary(self, e: N.Unary):
        inner = self._wrap(e.operand, P_UNARY)
        if e.op in ("-", "+") and inner.startswith(e.op):
            inner = f"({inner})"  # `- -x` would lex as a decrement
        return f"{e.op}{inner}", P_UNARY

    def expr_Binary(self, e: N.Binary):
        p = PREC[e.op]
        return f"{self._wrap(e.lhs, p)} {e.op} {self._wrap(e.rhs, p, right=True)}", p

    def expr_Select(self, e: N.Select):
        return (f"{self._wrap(e.cond, P_SELECT, right=True)} ? {self._wrap(e.then, P_SELECT)} : "
                f"{self._wrap(e.other, P_SELECT)}"), P_SELECT

    def expr_Cast(self, e: N.Cast):
        tname = self.type_decl(e.dtype, "").strip()
        if e.kind in ("static", "reinterpret", "const"):
            return f"{e.kind}_cast<{tname}>({self.expr(e.value)})", P_POSTFIX
        if e.kind == "functional" and isinstance(e.dtype, T.ScalarType) and " " not in tname:
            return f"{tname}({self.expr(e.value)})", P_POSTFIX
        return f"({tname}){self._wrap(e.value, P_UNARY)}", P_UNARY

    def expr_Load(self, e: N.Load):
        return f"{self._wrap(e.base, P_POSTFIX)}[{self.expr(e.index)}]", P_POSTFIX

    def expr_AddressOf(self, e: N.AddressOf):
        return f"&{self._wrap(e.value, P_UNARY)}", P_UNARY

    def expr_Deref(self, e: N.Deref):
        return f"*{self._wrap(e.pointer, P_UNARY)}", P_UNARY

    def expr_Member(self, e: N.Member):
        return f"{self._wrap(e.base, P_POSTFIX)}{'->' if e.arrow else '.'}{e.field}", P_POSTFIX

    def call_name(self, name: str) -> str:
        return name

    def expr_Call(self, e: N.Call):
        targs = ""
        if e.template_args:
            targs = "<" + ", ".join(self.type_decl(a, "").strip() if isinstance(a, T.Type) else self.expr(a)
                                    for a in e.template_args) + ">"
        return f"{self.call_name(e.func)}{targs}({', '.join(self.expr(a) for a in e.args)})", P_POSTFIX

    def expr_SizeOf(self, e: N.SizeOf):
        inner = self.type_decl(e.of, "").strip() if isinstance(e.of, T.Type) else self.expr(e.of)
        return f"sizeof({inner})", P_POSTFIX

    def expr_InitList(self, e: N.InitList):
        return "{" + ", ".join(self.expr(v) for v in e.values) + "}", P_ATOM


def clang_format(text: str, style: str = "LLVM") -> str:
    """Format with clang-format when it is installed; otherwise return ``text`` unchanged."""
    exe = shutil.which("clang-format")
    if not exe:
        return text
    try:
        r = subprocess.run([exe, f"--style={style}", "--assume-filename=kernel.cu"], input=text,
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return text
    return r.stdout if r.returncode == 0 and r.stdout else text
