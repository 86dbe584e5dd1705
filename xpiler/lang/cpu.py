"""C/C++ for the CPU (optionally AVX-512 VNNI intrinsics and OpenMP)."""
from .printer import CPrinter


class CpuPrinter(CPrinter):
    dialect = "cpu"
    type_spellings = {**CPrinter.type_spellings, "int32": "int"}
