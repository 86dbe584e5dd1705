"""CUDA C++: what its printer states differently from plain C."""
from ..ir import types as T
from .printer import CPrinter


class CudaPrinter(CPrinter):
    dialect = "cuda"
    kernel_qualifier = "__global__"
    device_qualifier = "__device__"
    scope_qualifiers = {"shared": "__shared__", "": ""}
    barrier_spellings = {"block": "__syncthreads", "warp": "__syncwarp"}
    type_spellings = {**CPrinter.type_spellings, "float16": "half", "bfloat16": "__nv_bfloat16"}

    def fragment(self, t: T.FragmentType) -> str:
        dims = ", ".join(self.expr(d) for d in (t.m, t.n, t.k))
        layout = f", wmma::{t.layout}" if t.layout else ""
        return f"wmma::fragment<wmma::{t.use}, {dims}, {self.base_type(t.elem)}{layout}>"
