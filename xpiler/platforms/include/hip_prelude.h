// Force-included (hipcc -include) when a HIP kernel is compiled with the real compiler.
// Benchmark-style sources carry no #include lines: they assume the HIP runtime API
// (hipMalloc, dim3, <<<>>>, threadIdx), half precision, FLT_MAX, libm and fprintf.
// MFMA builtins (__builtin_amdgcn_*) and GCC vector types need no header.
#pragma once

#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
