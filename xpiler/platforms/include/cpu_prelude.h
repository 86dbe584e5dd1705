// Force-included (g++ -include) when a CPU kernel is compiled with the real compiler.
// Benchmark-style sources carry no #include lines: they assume the AVX-512 / VNNI
// intrinsics, fixed-width integers, FLT_MAX/INFINITY, libm (expf, roundf, std::exp,
// std::lround), std::numeric_limits, std::max and iostream.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
