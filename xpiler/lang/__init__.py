"""Front-ends (source -> IR) and printers (IR -> source) for the four dialects."""
from __future__ import annotations

from ..ir.nodes import Program
from .cpu import CpuPrinter
from .cuda import CudaPrinter
from .frontend import DIALECTS, EXTENSIONS, dialect_of, parse_file, parse_source  # noqa: F401
from .hip import HipPrinter
from .mlu import MluPrinter
from .printer import clang_format

PRINTERS = {"cuda": CudaPrinter, "hip": HipPrinter, "mlu": MluPrinter, "cpu": CpuPrinter}


def print_program(program: Program, dialect: str | None = None, *, format: bool = True) -> str:
    """Source text for ``program`` in ``dialect`` (default: the program's own)."""
    text = PRINTERS[dialect or program.dialect]().program(program)
    return clang_format(text) if format else text
