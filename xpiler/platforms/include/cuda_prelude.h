// Force-included (nvcc -include) when a CUDA kernel is compiled with the real compiler.
// Benchmark-style sources carry no #include lines: they assume the CUDA runtime API,
// half precision, WMMA (unqualified `wmma::`), FLT_MAX and libm, and two of them print
// errors with fprintf. This header supplies exactly that context, nothing more.
#pragma once

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

// The sources write `wmma::fragment<...>` without a namespace qualifier.
using namespace nvcuda;
