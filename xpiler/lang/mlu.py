"""Cambricon BANG C: kernel and memory-space qualifiers, task indices, __memcpy."""
from ..ir import nodes as N
from .printer import CPrinter


class MluPrinter(CPrinter):
    dialect = "mlu"
    kernel_qualifier = "__mlu_global__"
    device_qualifier = "__mlu_func__"
    scope_qualifiers = {"nram": "__nram__", "wram": "__wram__", "sram": "__mlu_shared__",
                        "ldram": "__ldram__", "": ""}
    barrier_spellings = {"all": "__sync_all", "cluster": "__sync_cluster", "io": "__sync_io",
                         "compute": "__sync_compute"}
    type_spellings = {**CPrinter.type_spellings, "float16": "half", "bfloat16": "bfloat16_t"}

    def stmt_Dma(self, s: N.Dma, level):
        name = "__memcpy_async" if s.is_async else "__memcpy"
        args = [self.expr(s.dst), self.expr(s.src), self.expr(s.size), s.direction]
        args += [self.expr(a) for a in s.strides]
        return f"{name}({', '.join(args)});"
