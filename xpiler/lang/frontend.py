"""Front-end: tree-sitter-cuda syntax trees to IR, for all four dialects.

One converter serves CUDA, HIP, BANG C and C/C++: the dialects share C's expression and
statement syntax, and what differs (kernel qualifiers, memory-space qualifiers, index
values, barriers, DMA) is table-driven by ``Dialect``. Constructs the IR does not model
are rejected with ``SourceError`` at their file:line:col, never silently dropped.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import SourceError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.consteval import try_fold
from .source import MaskedAttribute, mask_source


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter_cuda
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_cuda.language()))


# ----------------------------------------------------------------------- dialect tables
@dataclass(frozen=True)
class Dialect:
    name: str
    kernel_markers: frozenset  # qualifiers/attributes that make a function a kernel
    device_markers: frozenset
    scope_markers: dict  # qualifier/attribute -> memory scope
    specials: frozenset  # identifiers that are platform index values
    special_fields: frozenset  # struct-like index values: threadIdx.x ...
    barriers: dict  # function name -> barrier scope
    dma_functions: frozenset = frozenset()
    extern_c_kernels: bool = False  # cpu: an extern "C" function is a kernel


_GPU_FIELDS = frozenset(f"{b}.{a}" for b in ("threadIdx", "blockIdx", "blockDim", "gridDim") for a in "xyz")

DIALECTS = {
    "cuda": Dialect(
        "cuda", frozenset({"__global__"}), frozenset({"__device__"}), {"__shared__": "shared"},
        frozenset({"warpSize"}), _GPU_FIELDS, {"__syncthreads": "block", "__syncwarp": "warp"}),
    "hip": Dialect(
        "hip", frozenset({"__global__"}), frozenset({"__device__"}), {"__shared__": "shared"},
        frozenset({"warpSize"}), _GPU_FIELDS, {"__syncthreads": "block", "__syncwarp": "warp"}),
    "mlu": Dialect(
        "mlu", frozenset({"mlu_global", "mlu_entry"}), frozenset({"mlu_func", "mlu_device"}),
        {"nram": "nram", "wram": "wram", "mlu_shared": "sram", "ldram": "ldram"},
        frozenset({"clusterId", "coreId", "taskId", "taskDim", "clusterDim", "coreDim",
                   "taskIdX", "taskIdY", "taskIdZ", "taskDimX", "taskDimY", "taskDimZ"}),
        frozenset(),
        {"__sync_all": "all", "__sync_cluster": "cluster", "__sync_io": "io",
         "__sync_compute": "compute", "__sync_all_ipu": "all", "__sync": "io"},
        frozenset({"__memcpy", "__memcpy_async"})),
    "cpu": Dialect("cpu", frozenset(), frozenset(), {}, frozenset(), frozenset(), {},
                   extern_c_kernels=True),
}

EXTENSIONS = {".cu": "cuda", ".cuh": "cuda", ".hip": "hip", ".mlu": "mlu",
              ".cpp": "cpu", ".cc": "cpu", ".c": "cpu", ".cxx": "cpu"}

# Spellings of scalar types -> canonical names.
SCALAR_SPELLINGS = {
    "void": "void", "bool": "bool", "_Bool": "bool", "char": "int8", "signed char": "int8",
    "unsigned char": "uint8", "short": "int16", "short int": "int16", "unsigned short": "uint16",
    "int": "int32", "signed": "int32", "signed int": "int32", "unsigned": "uint32",
    "unsigned int": "uint32", "long": "int64", "long int": "int64", "long long": "int64",
    "long long int": "int64", "unsigned long": "uint64", "unsigned long long": "uint64",
    "unsigned long int": "uint64", "unsigned long long int": "uint64",
    "float": "float32", "double": "float64", "size_t": "uint64", "ptrdiff_t": "int64",
    "int8_t": "int8", "int16_t": "int16", "int32_t": "int32", "int64_t": "int64",
    "uint8_t": "uint8", "uint16_t": "uint16", "uint32_t": "uint32", "uint64_t": "uint64",
    "half": "float16", "__half": "float16", "_Float16": "float16",
    "__nv_bfloat16": "bfloat16", "bfloat16": "bfloat16", "hip_bfloat16": "bfloat16",
    "bfloat16_t": "bfloat16", "int8": "int8", "int16": "int16", "int32": "int32",
}

# Built-in vector types of the dialects (element, lanes).
VECTOR_SPELLINGS = {
    "__m512i": (T.I64, 8), "__m256i": (T.I64, 4), "__m128i": (T.I64, 2),
    "__m512": (T.F32, 16), "__m256": (T.F32, 8), "__m128": (T.F32, 4),
    "__m512d": (T.F64, 8), "__m256d": (T.F64, 4),
}
for _base, _elem in (("float", T.F32), ("int", T.I32), ("uint", T.U32), ("double", T.F64),
                     ("char", T.I8), ("uchar", T.U8), ("short", T.I16), ("half", T.F16)):
    for _n in (2, 3, 4):
        VECTOR_SPELLINGS[f"{_base}{_n}"] = (_elem, _n)
VECTOR_SPELLINGS["half2"] = (T.F16, 2)
VECTOR_SPELLINGS["__half2"] = (T.F16, 2)

# Well-known constants' types.
KNOWN_CONSTANTS = {"FLT_MAX": T.F32, "FLT_MIN": T.F32, "INFINITY": T.F32, "NAN": T.F32,
                   "M_PI": T.F64, "FLT_EPSILON": T.F32, "INT_MAX": T.I32, "INT_MIN": T.I32}

FRAGMENT_NAMESPACES = ("nvcuda::wmma::", "wmma::", "rocwmma::")

_INT_RE = re.compile(r"^(0[xX][0-9a-fA-F']+|0[bB][01']+|[0-9']+)([uUlL]*)$")


def dialect_of(path: str) -> str:
    import os

    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise SourceError(f"cannot tell the dialect of {path!r} from its extension "
                          f"(known: {', '.join(sorted(EXTENSIONS))})")
    return EXTENSIONS[ext]


def canonical_name(name: str) -> str:
    """Namespace spellings that mean the same function collapse to one name."""
    name = re.sub(r"\s+", " ", name).replace(" ::", "::").replace(":: ", "::")
    if name.startswith("nvcuda::"):
        name = name[len("nvcuda::"):]
    return name


# ----------------------------------------------------------------------- the converter
@dataclass
class _Scope:
    names: dict = field(default_factory=dict)


class Converter:
    def __init__(self, data: bytes, dialect: str, filename: str):
        self.dialect = DIALECTS[dialect]
        self.filename = filename
        self.data = data
        masked, self.vector_attrs = mask_source(data, dialect)
        self.masked = masked
        self.tree = _parser().parse(masked)
        self.scopes: list[_Scope] = [_Scope()]
        self.aliases: list[dict] = [{}]
        self.instances: dict = {}  # (template name, argument text) -> instance name
        self.defines: dict[str, N.Expr | None] = {}

    # -- positions and errors
    def span(self, node) -> N.Span:
        row, col = node.start_point
        return N.Span(self.filename, row + 1, col + 1)

    def error(self, node, message: str, construct: str | None = None) -> SourceError:
        return SourceError(message, self.span(node), construct)

    def unsupported(self, node, what: str | None = None) -> SourceError:
        construct = what or node.type.replace("_specifier", "").replace("_statement", " statement")
        snippet = self.text(node).split("\n")[0][:60]
        return self.error(node, f"unsupported construct '{construct}': `{snippet}`", construct)

    def text(self, node) -> str:
        return self.data[node.start_byte:node.end_byte].decode(errors="replace")

    # -- symbols
    def push(self):
        self.scopes.append(_Scope())
        self.aliases.append({})

    def pop(self):
        self.scopes.pop()
        self.aliases.pop()

    def bind(self, name: str, dtype):
        self.scopes[-1].names[name] = dtype

    def lookup(self, name: str):
        for s in reversed(self.scopes):
            if name in s.names:
                return s.names[name], True
        return None, False

    def alias(self, name: str):
        for a in reversed(self.aliases):
            if name in a:
                return a[name]
        return None

    # -- entry
    def program(self) -> N.Program:
        root = self.tree.root_node
        if root.has_error:
            bad = _first_error(root)
            what = "missing " + bad.type if bad.is_missing else "syntax error"
            near = self.text(bad).split("\n")[0][:40] if not bad.is_missing else ""
            raise self.error(bad, f"{what}" + (f" near `{near}`" if near else ""), "syntax")
        defines, globals_, functions = [], [], []
        for child in root.named_children:
            self._top(child, defines, globals_, functions, extern_c=False)
        return N.Program(self.dialect.name, tuple(defines), tuple(globals_), tuple(functions),
                         span=self.span(root))

    def _top(self, node, defines, globals_, functions, extern_c):
        t = node.type
        if t == "comment":
            return
        if t == "preproc_def":
            name = self.text(node.child_by_field_name("name"))
            value_node = node.child_by_field_name("value")
            value = self._macro_value(value_node, node) if value_node is not None else None
            self.defines[name] = value
            self.bind(name, _expr_type(value) if value is not None else None)
            defines.append(N.Define(name, value, span=self.span(node)))
        elif t in ("preproc_include", "using_declaration"):
            globals_.append(N.Pragma(self.text(node).strip(), span=self.span(node)))
        elif t == "preproc_call":
            directive = self.text(node.child_by_field_name("directive"))
            if directive not in ("#pragma",):
                raise self.unsupported(node, f"preprocessor {directive}")
            globals_.append(N.Pragma(self.text(node).strip(), span=self.span(node)))
        elif t in ("preproc_function_def", "preproc_ifdef", "preproc_if"):
            raise self.unsupported(node, "preprocessor conditional or function-like macro")
        elif t == "linkage_specification":
            body = node.child_by_field_name("body")
            inner = body.named_children if body.type == "declaration_list" else [body]
            for c in inner:
                self._top(c, defines, globals_, functions, extern_c=True)
        elif t == "function_definition":
            functions.append(self.function(node, extern_c))
        elif t == "template_declaration":
            functions.extend(self.template_instances(node, extern_c))
        elif t == "declaration":
            if _is_prototype(node):
                return  # a forward declaration adds nothing: the definition follows
            globals_.extend(self.declaration(node))
        elif t in ("alias_declaration", "type_definition"):
            globals_.append(self.type_alias(node))
        elif t == "expression_statement" and not node.named_children:
            return
        else:
            raise self.unsupported(node)

    # -- templates: instantiated where the file uses them (`saxpy<256><<<g, b>>>(...)`)
    def template_instances(self, node, extern_c: bool) -> list[N.Function]:
        """One function per distinct template argument list the file uses, named
        ``name_<args>``: type parameters become aliases, value parameters constants."""
        fn = next((c for c in node.named_children if c.type == "function_definition"), None)
        if fn is None:
            raise self.unsupported(node, "template of something other than a function")
        params = []
        for p in node.child_by_field_name("parameters").named_children:
            if p.type == "type_parameter_declaration":
                params.append(("type", self.text(p.named_children[-1])))
            elif p.type == "parameter_declaration":
                params.append(("value", self.text(p.child_by_field_name("declarator"))))
            else:
                raise self.unsupported(p, "template parameter")
        name = self.text(fn.child_by_field_name("declarator").child_by_field_name("declarator"))
        out = []
        for use in _template_uses(self.tree.root_node, name, self.text):
            targs = [a for a in use.child_by_field_name("arguments").named_children if a.type != "comment"]
            key = (name, self.text(use.child_by_field_name("arguments")))
            if key in self.instances or len(targs) != len(params):
                continue
            inst = self.namer_for_instance(name, targs)
            self.instances[key] = inst
            self.push()
            values = {}
            for (kind, pname), a in zip(params, targs):
                if kind == "type":
                    self.aliases[-1][pname] = self.type_descriptor(a)
                else:
                    v = try_fold(self.expr(a))
                    if not isinstance(v, (int, float)):
                        self.pop()
                        raise self.error(a, f"template argument {self.text(a)} is not a constant", name)
                    values[pname] = N.Const(v, T.I32 if isinstance(v, int) else T.F32)
                    self.bind(pname, values[pname].dtype)
            f = self.function(fn, extern_c)
            self.pop()
            from ..passes.base import substitute

            out.append(dataclasses.replace(substitute(f, values), name=inst))
        return out

    def namer_for_instance(self, name: str, targs) -> str:
        parts = ["".join(ch if ch.isalnum() else "_" for ch in self.text(a)) for a in targs]
        return "_".join([name] + parts)

    def _macro_value(self, value_node, define_node):
        text = self.text(value_node).strip()
        if not text:
            return None
        sub = Converter(f"int __xpiler_macro = ({text});".encode(), self.dialect.name, self.filename)
        sub.scopes = self.scopes
        root = sub.tree.root_node
        if root.has_error:
            raise self.error(define_node, f"macro value is not an expression: `{text}`", "macro")
        decl = root.named_children[0]
        init = decl.child_by_field_name("declarator").child_by_field_name("value")
        try:
            return sub.expr(init)
        except SourceError as e:
            raise self.error(define_node, f"in macro value: {e.message}", "macro") from None

    # -- functions
    def function(self, node, extern_c: bool) -> N.Function:
        markers, quals, launch_bounds = self._function_markers(node)
        d = self.dialect
        if markers & d.kernel_markers:
            kind = "kernel"
        elif markers & d.device_markers:
            kind = "device"
        elif d.extern_c_kernels:
            kind = "kernel" if extern_c else "device"
        else:
            kind = "host"
        ret_base = self.type_of_specifier(node.child_by_field_name("type"), node)
        declarator = node.child_by_field_name("declarator")
        ret, fdecl = self._unwrap_function_declarator(declarator, ret_base)
        name = self.text(fdecl.child_by_field_name("declarator"))
        self.push()
        params = []
        for p in fdecl.child_by_field_name("parameters").named_children:
            if p.type == "comment":
                continue
            if p.type != "parameter_declaration":
                raise self.unsupported(p, "parameter " + p.type)
            ptype = self.type_of_specifier(p.child_by_field_name("type"), p)
            ptype = self._qualify(p, ptype)
            pdecl = p.child_by_field_name("declarator")
            if pdecl is None:
                if isinstance(ptype, T.ScalarType) and ptype.name == "void":
                    continue
                raise self.error(p, "unnamed parameter", "parameter")
            pname, ptype, _ = self.declarator(pdecl, ptype)
            self.bind(pname, ptype)
            params.append(N.Param(pname, ptype, span=self.span(p)))
        self.bind(name, ret)
        body = self.block(node.child_by_field_name("body"), new_scope=False)
        self.pop()
        self.bind(name, ret)
        return N.Function(name, tuple(params), ret, body, kind, extern_c, tuple(quals),
                          tuple(launch_bounds), span=self.span(node))

    def _function_markers(self, node):
        markers, quals, launch_bounds = set(), [], []
        for c in node.children:
            t = c.type
            if t in ("__global__", "__device__", "__host__", "__forceinline__", "__noinline__"):
                markers.add(t)
                if t in ("__forceinline__", "__noinline__"):
                    quals.append(t)
            elif t == "attribute_declaration":
                for a in c.named_children:
                    markers.add(self.text(a))
            elif t == "storage_class_specifier":
                quals.append(self.text(c))
            elif t == "launch_bounds":
                launch_bounds = [self.expr(e) for e in c.named_children]
            elif t == "type_qualifier":
                markers.add(self.text(c))
        if "__host__" in markers and "__device__" in markers:
            quals.append("__host__")
        return markers, quals, launch_bounds

    def _unwrap_function_declarator(self, node, ret):
        while node.type in ("pointer_declarator", "reference_declarator"):
            ret = T.PointerType(ret)
            node = node.child_by_field_name("declarator") or node.named_children[-1]
        if node.type != "function_declarator":
            raise self.unsupported(node, "function declarator " + node.type)
        return ret, node

    # -- types
    def type_of_specifier(self, node, owner):
        """The type named by a type specifier node (before declarators)."""
        if node is None:
            raise self.error(owner, "missing type", "type")
        t = node.type
        text = " ".join(self.text(node).split())
        if t in ("primitive_type", "sized_type_specifier", "type_identifier"):
            if t == "sized_type_specifier" and not node.child_by_field_name("type"):
                text = text  # "unsigned", "long long"
            aliased = self.alias(text)
            if aliased is not None:
                return aliased
            if text in SCALAR_SPELLINGS:
                return T.ScalarType(SCALAR_SPELLINGS[text])
            if text in VECTOR_SPELLINGS:
                elem, lanes = VECTOR_SPELLINGS[text]
                return T.VectorType(elem, lanes, text)
            return T.NamedType(text)
        if t == "qualified_identifier" or t == "template_type":
            frag = self._fragment_type(node)
            if frag is not None:
                return frag
            return T.NamedType(canonical_name(text))
        if t == "placeholder_type_specifier" or text == "auto":
            return T.NamedType("auto")
        if t in ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier"):
            raise self.unsupported(node, t.replace("_specifier", ""))
        raise self.unsupported(node, "type " + t)

    def _fragment_type(self, node):
        text = " ".join(self.text(node).split())
        if not any(text.startswith(ns + "fragment") for ns in FRAGMENT_NAMESPACES):
            return None
        tmpl = node
        while tmpl.type == "qualified_identifier":
            tmpl = tmpl.child_by_field_name("name")
        if tmpl.type != "template_type":
            raise self.unsupported(node, "wmma::fragment without template arguments")
        args = [a for a in tmpl.child_by_field_name("arguments").named_children if a.type != "comment"]
        if len(args) not in (5, 6):
            raise self.error(node, "wmma::fragment takes 5 or 6 template arguments", "fragment")

        def arg_text(a):
            return " ".join(self.text(a).split()).split("::")[-1]

        use = arg_text(args[0])
        dims = []
        for a in args[1:4]:
            inner = a.named_children[0] if a.type == "type_descriptor" else a
            if inner.type in ("type_identifier",):
                dims.append(N.Var(self.text(inner), self.lookup(self.text(inner))[0], span=self.span(inner)))
            else:
                dims.append(self.expr(inner))
        elem = self.type_of_specifier(args[4].child_by_field_name("type") if args[4].type == "type_descriptor" else args[4], args[4])
        layout = arg_text(args[5]) if len(args) == 6 else ""
        if use not in ("matrix_a", "matrix_b", "accumulator"):
            raise self.error(args[0], f"unknown fragment use {use!r}", "fragment")
        return T.FragmentType(use, dims[0], dims[1], dims[2], elem, layout)

    def _qualify(self, decl_node, dtype):
        """Apply `const` written before the type of a declaration to the declared type."""
        for c in decl_node.children:
            if c.type == "type_qualifier" and self.text(c) == "const":
                return _with_const(dtype)
        return dtype

    def type_descriptor(self, node):
        base = self.type_of_specifier(node.child_by_field_name("type"), node)
        base = self._qualify(node, base)
        decl = node.child_by_field_name("declarator")
        while decl is not None:
            if decl.type == "abstract_pointer_declarator":
                restrict = const = False
                for c in decl.children:
                    if c.type == "type_qualifier":
                        q = self.text(c)
                        restrict |= q in ("__restrict__", "restrict", "__restrict")
                        const |= q == "const"
                base = T.PointerType(_strip_const(base), "", _is_const(base), restrict)
                decl = decl.child_by_field_name("declarator")
            elif decl.type == "abstract_reference_declarator":
                decl = decl.child_by_field_name("declarator") if decl.child_by_field_name("declarator") else None
            else:
                raise self.unsupported(decl, "type " + decl.type)
        return _strip_const(base)

    def declarator(self, node, base):
        """(name, type, init-node) for a declarator applied to ``base``."""
        t = node.type
        if t == "identifier" or t == "field_identifier":
            return self.text(node), _strip_const(base), None
        if t == "init_declarator":
            name, dtype, _ = self.declarator(node.child_by_field_name("declarator"), base)
            return name, dtype, node.child_by_field_name("value")
        if t == "pointer_declarator":
            restrict = False
            for c in node.children:
                if c.type == "type_qualifier" and self.text(c) in ("__restrict__", "restrict", "__restrict"):
                    restrict = True
            ptr = T.PointerType(_strip_const(base), "", _is_const(base), restrict)
            return self.declarator(node.child_by_field_name("declarator"), ptr)
        if t == "reference_declarator":
            raise self.unsupported(node, "reference")
        if t == "array_declarator":
            size_node = node.child_by_field_name("size")
            size = self.expr(size_node) if size_node is not None else None
            inner = node.child_by_field_name("declarator")
            # a[2][3]: the outer array_declarator holds the last dimension
            name, dtype, init = self.declarator(inner, base)
            if isinstance(dtype, T.ArrayType):
                return name, T.ArrayType(dtype.elem, dtype.shape + (size,), dtype.scope), init
            return name, T.ArrayType(_strip_const(base), (size,)), init
        if t == "parenthesized_declarator":
            raise self.unsupported(node, "parenthesized declarator")
        if t == "function_declarator":
            return self._vexing_parse(node, base)
        raise self.unsupported(node, "declarator " + t)

    def _vexing_parse(self, node, base):
        """`dim3 block(n);` parses as a function declaration whose "parameter types" are
        really variables: read it as the constructor call it is."""
        args = []
        for p in node.child_by_field_name("parameters").named_children:
            tnode = p.child_by_field_name("type") if p.type == "parameter_declaration" else None
            if tnode is None or p.child_by_field_name("declarator") is not None or tnode.type != "type_identifier":
                raise self.unsupported(node, "function declaration inside a function")
            name = self.text(tnode)
            args.append(N.Var(name, self.lookup(name)[0], span=self.span(tnode)))
        name = self.text(node.child_by_field_name("declarator"))
        return name, base, _Ctor(tuple(args), self.span(node))

    def _vector_attr_in(self, node) -> MaskedAttribute | None:
        for a in self.vector_attrs:
            if node.start_byte <= a.start < node.end_byte:
                return a
        return None

    def _vector_type(self, attr: MaskedAttribute, elem, name: str, node):
        size_expr = self._macro_value_text(attr.size_expr, node)
        env = {k: v for k, v in self.defines.items() if v is not None}
        nbytes = try_fold(size_expr, env)
        width = T.byte_size(elem)
        if not isinstance(nbytes, int) or not width or nbytes % width:
            raise self.error(node, f"vector size `{attr.size_expr}` is not a constant multiple of the element size", "vector_size")
        return T.VectorType(elem, nbytes // width, name)

    def _macro_value_text(self, text: str, node):
        sub = Converter(f"int __x = ({text});".encode(), self.dialect.name, self.filename)
        sub.scopes = self.scopes
        if sub.tree.root_node.has_error:
            raise self.error(node, f"cannot parse `{text}`", "vector_size")
        init = sub.tree.root_node.named_children[0].child_by_field_name("declarator").child_by_field_name("value")
        return sub.expr(init)

    def type_alias(self, node) -> N.TypeAlias:
        if node.type == "alias_declaration":
            name = self.text(node.child_by_field_name("name"))
            dtype = self.type_descriptor(node.child_by_field_name("type"))
        else:
            base = self.type_of_specifier(node.child_by_field_name("type"), node)
            decl = node.child_by_field_name("declarator")
            name, dtype, _ = self.declarator(decl, base)
        attr = self._vector_attr_in(node)
        if attr is not None:
            dtype = self._vector_type(attr, dtype, name, node)
        self.aliases[-1][name] = dtype if not isinstance(dtype, T.ScalarType) else dtype
        return N.TypeAlias(name, dtype, span=self.span(node))

    # -- statements
    def block(self, node, new_scope=True) -> N.Block:
        if new_scope:
            self.push()
        body = []
        if node.type == "compound_statement":
            for c in node.named_children:
                body.extend(self.statement(c))
        else:
            body.extend(self.statement(node))
        if new_scope:
            self.pop()
        return N.Block(tuple(body), span=self.span(node))

    def statement(self, node) -> list[N.Stmt]:
        t = node.type
        sp = self.span(node)
        if t == "comment":
            return []
        if t == "compound_statement":
            return [self.block(node)]
        if t == "declaration":
            return self.declaration(node)
        if t in ("alias_declaration", "type_definition"):
            return [self.type_alias(node)]
        if t == "expression_statement":
            if not node.named_children:
                return []
            return [self.expression_statement(node.named_children[0])]
        if t == "if_statement":
            cond = self.expr(node.child_by_field_name("condition"))
            then = self.block(node.child_by_field_name("consequence"))
            alt = node.child_by_field_name("alternative")
            other = None
            if alt is not None:
                inner = [c for c in alt.named_children if c.type != "comment"][0]
                other = self.block(inner)
            return [N.If(cond, then, other, span=sp)]
        if t == "for_statement":
            return self.for_statement(node)
        if t == "while_statement":
            return [N.While(self.expr(node.child_by_field_name("condition")),
                            self.block(node.child_by_field_name("body")), span=sp)]
        if t == "return_statement":
            vals = [c for c in node.named_children if c.type != "comment"]
            return [N.Return(self.expr(vals[0]) if vals else None, span=sp)]
        if t == "break_statement":
            return [N.Break(span=sp)]
        if t == "continue_statement":
            return [N.Continue(span=sp)]
        if t == "preproc_call":
            directive = self.text(node.child_by_field_name("directive"))
            if directive == "#pragma":
                arg = node.child_by_field_name("argument")
                return [N.Pragma(("#pragma " + (self.text(arg).strip() if arg else "")).strip(), span=sp)]
            raise self.unsupported(node, f"preprocessor {directive} inside a function")
        if t == "using_declaration":
            return [N.Pragma(self.text(node).strip(), span=sp)]
        raise self.unsupported(node, t.replace("_statement", "") + " statement" if t.endswith("_statement") else t)

    def declaration(self, node) -> list[N.Stmt]:
        scope, quals = "", []
        for c in node.children:
            if c.type == "type_qualifier":
                q = self.text(c)
                if q in self.dialect.scope_markers:
                    scope = self.dialect.scope_markers[q]
                elif q != "const":
                    quals.append(q)
                else:
                    quals.append("const")
            elif c.type == "storage_class_specifier":
                quals.append(self.text(c))
            elif c.type == "attribute_declaration":
                for a in c.named_children:
                    name = self.text(a)
                    if name in self.dialect.scope_markers:
                        scope = self.dialect.scope_markers[name]
                    else:
                        raise self.unsupported(c, f"attribute [[{name}]]")
            elif c.type == "attribute_specifier":
                quals.append(self.text(c))
            elif c.type == "alignas_qualifier":
                quals.append(" ".join(self.text(c).split()))
        base = self.type_of_specifier(node.child_by_field_name("type"), node)
        if "const" in quals:
            base = _with_const(base)  # `const T *p`: the pointee is const
        attr = self._vector_attr_in(node)
        out = []
        for d in node.children_by_field_name("declarator"):
            name, dtype, init_node = self.declarator(d, base)
            if attr is not None:
                dtype = self._vector_type(attr, dtype, "", node)
            if isinstance(dtype, T.ArrayType) and scope:
                dtype = T.ArrayType(dtype.elem, dtype.shape, scope)
            init = None
            if isinstance(init_node, _Ctor):
                init = N.Call(_type_name(dtype), init_node.args, span=init_node.span)
            elif init_node is not None:
                if init_node.type == "argument_list":  # T x(args): constructor call
                    init = N.Call(_type_name(dtype), tuple(self.expr(a) for a in init_node.named_children if a.type != "comment"),
                                  span=self.span(init_node))
                else:
                    init = self.expr(init_node)
            self.bind(name, dtype)
            out.append(N.Decl(name, dtype, init, scope, tuple(q for q in quals if q != "const") + (("const",) if "const" in quals and not isinstance(dtype, T.PointerType) else ()),
                              span=self.span(d)))
        return out

    def expression_statement(self, node) -> N.Stmt:
        sp = self.span(node)
        t = node.type
        if t == "assignment_expression":
            op = self.text(node.child_by_field_name("operator"))
            return N.Assign(self.lvalue(node.child_by_field_name("left")),
                            self.expr(node.child_by_field_name("right")), op, span=sp)
        if t == "update_expression":
            op = self.text(node.child_by_field_name("operator"))
            return N.Assign(self.lvalue(node.child_by_field_name("argument")), N.Const(1, T.I32),
                            "+=" if op == "++" else "-=", span=sp)
        if t == "call_expression":
            launch = _child_of_type(node, "kernel_call_syntax")
            if launch is not None:
                return self.launch(node, launch)
            fname = canonical_name(self.text(node.child_by_field_name("function")))
            args = [c for c in node.child_by_field_name("arguments").named_children if c.type != "comment"]
            if fname == "hipLaunchKernelGGL" and len(args) >= 5:  # (kernel, grid, block, shmem, stream, args...)
                return N.Launch(self.text(args[0]).strip(), tuple(self.expr(a) for a in args[1:5]),
                                tuple(self.expr(a) for a in args[5:]), span=sp)
            if fname in self.dialect.barriers:
                return N.Barrier(self.dialect.barriers[fname], tuple(self.expr(a) for a in args), span=sp)
            if fname in self.dialect.dma_functions:
                return self.dma(node, fname, args)
        if t == "comma_expression":
            raise self.unsupported(node, "comma expression")
        return N.ExprStmt(self.expr(node), span=sp)

    def launch(self, call, cfg) -> N.Launch:
        kernel = self.text(call.child_by_field_name("function"))
        fn = call.child_by_field_name("function")
        if fn.type == "template_function":
            key = (self.text(fn.child_by_field_name("name")), self.text(fn.child_by_field_name("arguments")))
            kernel = self.instances.get(key, kernel)
        config = tuple(self.expr(c) for c in cfg.named_children if c.type != "comment")
        args = tuple(self.expr(a) for a in call.child_by_field_name("arguments").named_children if a.type != "comment")
        return N.Launch(kernel, config, args, span=self.span(call))

    def dma(self, node, fname, args) -> N.Dma:
        if len(args) not in (4, 7, 13):
            raise self.error(node, f"{fname} takes 4, 7 or 13 arguments, got {len(args)}", fname)
        direction = self.text(args[3]).strip()
        return N.Dma(self.expr(args[0]), self.expr(args[1]), self.expr(args[2]), direction,
                     tuple(self.expr(a) for a in args[4:]), fname.endswith("_async"), span=self.span(node))

    def for_statement(self, node) -> list[N.Stmt]:
        """A counted loop. Extra variables declared in the initializer (`int i = 0, p = 0`)
        are declared in a block around the loop, and extra updates (`++i, ++p`) run at
        the end of the body; both keep the program's meaning and leave ``For`` canonical."""
        sp = self.span(node)
        init = node.child_by_field_name("initializer")
        cond = node.child_by_field_name("condition")
        update = node.child_by_field_name("update")
        self.push()
        canon = self._canonical_for(init, cond, update)
        if canon is None:
            loop = self._for_as_while(node, init, cond, update)
            self.pop()
            return loop
        var, dtype, start, cmp, bound, step, declared, pre, post = canon
        body = self.block(node.child_by_field_name("body"))
        self.pop()
        if post:
            if any(isinstance(n, N.Continue) for n in _same_loop_statements(body)):
                raise self.error(node, "a for loop with several updates and a `continue` is not supported", "for")
            body = N.Block(body.body + tuple(post), span=body.span)
        loop = N.For(var, dtype, start, cmp, bound, step, body, declared, span=sp)
        return [N.Block(tuple(pre) + (loop,), span=sp)] if pre else [loop]

    def _for_as_while(self, node, init, cond, update) -> list[N.Stmt]:
        """A loop that is not counted (``s >>= 1``, ``p = next[p]``) as
        ``{ init; while (cond) { body; update; } }``: the same meaning, as long as no
        ``continue`` would skip the update."""
        sp = self.span(node)
        if cond is None or update is None:
            raise self.error(node, "for loop without a condition or an update is not supported", "for")
        pre = []
        if init is not None:
            pre = self.declaration(init) if init.type == "declaration" else [self.expression_statement(init)]
        test = self.expr(cond)
        body = self.block(node.child_by_field_name("body"))
        if any(isinstance(n, N.Continue) for n in _same_loop_statements(body)):
            raise self.error(node, "a `continue` in a for loop that is not counted "
                                   "(`for (int i = a; i < b; i += s)`) is not supported", "for")
        steps = [self.expression_statement(u) for u in _comma_items(update)]
        loop = N.While(test, N.Block(body.body + tuple(steps), span=body.span), span=sp)
        return [N.Block(tuple(pre) + (loop,), span=sp)]

    def _canonical_for(self, init, cond, update):
        if init is None or cond is None or update is None or cond.type != "binary_expression":
            return None
        op = self.text(cond.child_by_field_name("operator"))
        left, right = cond.child_by_field_name("left"), cond.child_by_field_name("right")
        flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}
        if op not in flip:
            return None
        if left.type == "identifier":
            var, cmp, bound_node = self.text(left), op, right
        elif right.type == "identifier":
            var, cmp, bound_node = self.text(right), flip[op], left
        else:
            return None
        pre = []
        if init.type == "declaration":
            base = self.type_of_specifier(init.child_by_field_name("type"), init)
            found = None
            for d in init.children_by_field_name("declarator"):
                if d.type != "init_declarator":
                    return None
                name, dtype, value = self.declarator(d, base)
                if name == var:
                    found = (dtype, self.expr(value))
                else:
                    pre.append(N.Decl(name, dtype, self.expr(value), span=self.span(d)))
                self.bind(name, dtype)
            if found is None:
                return None
            dtype, start = found
            declared = True
        elif init.type == "assignment_expression" and self.text(init.child_by_field_name("operator")) == "=":
            target = init.child_by_field_name("left")
            if target.type != "identifier" or self.text(target) != var:
                return None
            dtype, _ = self.lookup(var)
            start = self.expr(init.child_by_field_name("right"))
            declared = False
        else:
            return None
        if dtype is None:
            dtype = T.I32
        bound = self.expr(bound_node)
        updates = _comma_items(update)
        step, post = None, []
        for u in updates:
            s = self._loop_step(u, var)
            if s is not None and step is None:
                step = s
            else:
                post.append(self.expression_statement(u))
        if step is None:
            return None
        return var, dtype, start, cmp, bound, step, declared, pre, post

    def _loop_step(self, update, var):
        t = update.type
        if t == "update_expression":
            arg = update.child_by_field_name("argument")
            if arg.type != "identifier" or self.text(arg) != var:
                return None
            op = self.text(update.child_by_field_name("operator"))
            return N.Const(1 if op == "++" else -1, T.I32)
        if t == "assignment_expression":
            left = update.child_by_field_name("left")
            if left.type != "identifier" or self.text(left) != var:
                return None
            op = self.text(update.child_by_field_name("operator"))
            right = self.expr(update.child_by_field_name("right"))
            if op == "+=":
                return right
            if op == "-=":
                return N.Const(-right.value, right.dtype) if isinstance(right, N.Const) else N.Unary("-", right)
            if op == "=" and isinstance(right, N.Binary) and right.op == "+" and right.lhs == N.Var(var, right.lhs.dtype if isinstance(right.lhs, N.Var) else None):
                return right.rhs
        return None

    # -- expressions
    def lvalue(self, node) -> N.Expr:
        e = self.expr(node)
        if not isinstance(e, (N.Var, N.Load, N.Member, N.Deref)):
            raise self.error(node, "cannot assign to this expression", "assignment")
        return e

    def expr(self, node) -> N.Expr:
        t = node.type
        sp = self.span(node)
        if t == "condition_clause":
            value = node.child_by_field_name("value")
            if value is None:
                raise self.unsupported(node, "declaration in a condition")
            return self.expr(value)
        if t == "parenthesized_expression":
            inner = [c for c in node.named_children if c.type != "comment"]
            if len(inner) != 1:
                raise self.unsupported(node)
            return self.expr(inner[0])
        if t == "number_literal":
            return _number(self.text(node), sp, self, node)
        if t in ("true", "false"):
            return N.Const(t == "true", T.BOOL, span=sp)
        if t in ("null", "nullptr"):
            return N.Var("nullptr", None, span=sp)
        if t == "string_literal" or t == "concatenated_string":
            return N.Const(self.text(node), T.NamedType("string"), span=sp)
        if t == "char_literal":
            return N.Const(self.text(node), T.NamedType("char"), span=sp)
        if t == "identifier":
            name = self.text(node)
            if name in self.dialect.specials:
                return N.Special(name, span=sp)
            dtype, _ = self.lookup(name)
            if dtype is None and name in KNOWN_CONSTANTS:
                dtype = KNOWN_CONSTANTS[name]
            return N.Var(name, dtype, span=sp)
        if t == "qualified_identifier":
            return N.Var(canonical_name(self.text(node)), None, span=sp)
        if t == "field_expression":
            base = node.child_by_field_name("argument")
            fld = self.text(node.child_by_field_name("field"))
            full = f"{self.text(base)}.{fld}"
            if full in self.dialect.special_fields:
                return N.Special(full, span=sp)
            op = node.child_by_field_name("operator")
            return N.Member(self.expr(base), fld, op is not None and self.text(op) == "->", span=sp)
        if t == "subscript_expression":
            idx = node.child_by_field_name("indices") or node.child_by_field_name("index")
            indices = [c for c in idx.named_children if c.type != "comment"] if idx.type == "subscript_argument_list" else [idx]
            if len(indices) != 1:
                raise self.unsupported(node, "multi-index subscript")
            return N.Load(self.expr(node.child_by_field_name("argument")), self.expr(indices[0]), span=sp)
        if t == "binary_expression":
            op = self.text(node.child_by_field_name("operator"))
            return N.Binary(op, self.expr(node.child_by_field_name("left")),
                            self.expr(node.child_by_field_name("right")), span=sp)
        if t == "unary_expression":
            op = self.text(node.child_by_field_name("operator"))
            return N.Unary(op, self.expr(node.child_by_field_name("argument")), span=sp)
        if t == "pointer_expression":
            op = self.text(node.child_by_field_name("operator"))
            arg = self.expr(node.child_by_field_name("argument"))
            return N.AddressOf(arg, span=sp) if op == "&" else N.Deref(arg, span=sp)
        if t == "conditional_expression":
            return N.Select(self.expr(node.child_by_field_name("condition")),
                            self.expr(node.child_by_field_name("consequence")),
                            self.expr(node.child_by_field_name("alternative")), span=sp)
        if t == "cast_expression":
            return N.Cast(self.type_descriptor(node.child_by_field_name("type")),
                          self.expr(node.child_by_field_name("value")), "c", span=sp)
        if t == "sizeof_expression":
            tnode = node.child_by_field_name("type")
            if tnode is not None:
                return N.SizeOf(self.type_descriptor(tnode), span=sp)
            value = self.expr(node.child_by_field_name("value"))
            if isinstance(value, N.Var) and value.dtype is None and self.lookup(value.name)[0] is None:
                # `sizeof(half)`: the grammar cannot tell a type name from a variable here
                named = self.alias(value.name)
                if named is None and value.name in SCALAR_SPELLINGS:
                    named = T.ScalarType(SCALAR_SPELLINGS[value.name])
                elif named is None and value.name in VECTOR_SPELLINGS:
                    named = T.VectorType(*VECTOR_SPELLINGS[value.name], value.name)
                if named is not None:
                    return N.SizeOf(named, span=sp)
            return N.SizeOf(value, span=sp)
        if t == "initializer_list":
            return N.InitList(tuple(self.expr(c) for c in node.named_children if c.type != "comment"), span=sp)
        if t == "call_expression":
            return self.call(node)
        if t in ("assignment_expression", "update_expression"):
            raise self.error(node, "assignment inside an expression is not supported; write it as its own statement", t)
        raise self.unsupported(node)

    def call(self, node) -> N.Expr:
        sp = self.span(node)
        fn = node.child_by_field_name("function")
        args_node = node.child_by_field_name("arguments")
        if _child_of_type(node, "kernel_call_syntax") is not None:
            raise self.error(node, "a kernel launch must be a statement of its own", "launch")
        args = tuple(self.expr(a) for a in args_node.named_children if a.type != "comment")
        if fn.type == "template_function":
            name = self.text(fn.child_by_field_name("name"))
            targs = [a for a in fn.child_by_field_name("arguments").named_children if a.type != "comment"]
            if name in ("static_cast", "reinterpret_cast", "const_cast"):
                if len(targs) != 1 or len(args) != 1:
                    raise self.error(node, f"{name} takes one type and one value", name)
                return N.Cast(self.type_descriptor(targs[0]), args[0], name.split("_")[0], span=sp)
            inst = self.instances.get((name, self.text(fn.child_by_field_name("arguments"))))
            if inst is not None:  # a call of a template function of this file
                return N.Call(inst, args, span=sp)
            return N.Call(canonical_name(name), args, tuple(self._template_arg(a) for a in targs), span=sp)
        if fn.type == "primitive_type":
            if len(args) != 1:
                raise self.error(node, "a functional cast takes one value", "cast")
            return N.Cast(self.type_of_specifier(fn, node), args[0], "functional", span=sp)
        if fn.type in ("identifier", "qualified_identifier"):
            name = canonical_name(self.text(fn))
            return N.Call(name, args, span=sp)
        if fn.type == "field_expression":
            raise self.unsupported(node, "method call")
        raise self.unsupported(node, "call through " + fn.type)

    def _template_arg(self, node):
        if node.type == "type_descriptor":
            return self.type_descriptor(node)
        return self.expr(node)


# ----------------------------------------------------------------------- helpers
def _template_uses(root, name: str, text):
    """The ``name<...>`` nodes of the file, in order."""
    stack, out = [root], []
    while stack:
        n = stack.pop()
        if n.type == "template_function" and text(n.child_by_field_name("name")) == name:
            out.append(n)
        stack.extend(reversed(n.children))
    return out


def _first_error(node):
    stack = [node]
    while stack:
        n = stack.pop(0)
        if n.type == "ERROR" or n.is_missing:
            return n
        stack = [c for c in n.children if c.has_error or c.is_missing] + stack
    return node


def _comma_items(node):
    if node.type == "comma_expression":
        return _comma_items(node.child_by_field_name("left")) + _comma_items(node.child_by_field_name("right"))
    return [node]


def _same_loop_statements(block):
    """Statements of a loop body that belong to this loop (not to nested loops)."""
    stack = list(block.body)
    while stack:
        s = stack.pop()
        yield s
        if isinstance(s, (N.For, N.While)):
            continue
        if isinstance(s, N.Block):
            stack.extend(s.body)
        elif isinstance(s, N.If):
            stack.extend(s.then.body + (s.other.body if s.other else ()))


def _child_of_type(node, type_name):
    for c in node.children:
        if c.type == type_name:
            return c
    return None


def _is_prototype(decl) -> bool:
    for d in decl.children_by_field_name("declarator"):
        while d.type == "pointer_declarator":
            d = d.child_by_field_name("declarator")
        if d.type == "function_declarator":
            return True
    return False


def _is_const(t) -> bool:
    return isinstance(t, _ConstBase) or isinstance(t, T.NamedType) and t.const


def _with_const(t):
    """``const T`` as a declaration base: pointer declarators turn it into a const pointee."""
    if isinstance(t, T.NamedType):
        return T.NamedType(t.name, True)
    return _ConstBase(t)


@dataclass(frozen=True)
class _Ctor:
    args: tuple
    span: object


@dataclass(frozen=True)
class _ConstBase:
    inner: object


def _strip_const(t):
    return t.inner if isinstance(t, _ConstBase) else t


def _type_name(t) -> str:
    if isinstance(t, T.NamedType):
        return t.name
    if isinstance(t, T.VectorType) and t.name:
        return t.name
    return "auto"


def _expr_type(e):
    if isinstance(e, N.Const):
        return e.dtype
    if isinstance(e, N.Var):
        return e.dtype
    return None


def _number(text: str, sp, conv, node) -> N.Const:
    raw = text.replace("'", "")
    if raw[:1] in "+-":  # the grammar sometimes folds a sign into the literal
        inner = _number(raw[1:], sp, conv, node)
        return N.Const(-inner.value, inner.dtype, span=sp) if raw[0] == "-" else inner
    m = _INT_RE.match(raw)
    if m:
        digits, suffix = m.group(1), m.group(2).lower()
        if digits.lower().startswith("0x"):
            value = int(digits, 16)
        elif digits.lower().startswith("0b"):
            value = int(digits[2:], 2)
        elif len(digits) > 1 and digits.startswith("0"):
            value = int(digits, 8)
        else:
            value = int(digits)
        unsigned = "u" in suffix
        longs = suffix.count("l")
        if longs:
            dtype = T.U64 if unsigned else T.I64
        else:
            dtype = T.U32 if unsigned else (T.I32 if value < 2**31 else T.I64)
        return N.Const(value, dtype, span=sp)
    lower = raw.lower()
    is_f32 = lower.endswith("f") and not lower.startswith("0x")
    body = raw[:-1] if is_f32 or lower.endswith("l") else raw
    try:
        value = float(body)
    except ValueError:
        raise conv.error(node, f"bad number literal `{text}`", "number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise conv.error(node, f"number literal `{text}` is out of range", "number")
    return N.Const(value, T.F32 if is_f32 else T.F64, span=sp)


def parse_source(text: str | bytes, dialect: str, filename: str = "<source>") -> N.Program:
    data = text.encode() if isinstance(text, str) else text
    return Converter(data, dialect, filename).program()


def parse_file(path: str, dialect: str | None = None) -> N.Program:
    with open(path, "rb") as f:
        data = f.read()
    return parse_source(data, dialect or dialect_of(path), path)
