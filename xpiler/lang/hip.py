"""HIP C++: CUDA's syntax with AMD's type names."""
from .cuda import CudaPrinter


class HipPrinter(CudaPrinter):
    dialect = "hip"
    type_spellings = {**CudaPrinter.type_spellings, "float16": "half", "bfloat16": "hip_bfloat16"}
