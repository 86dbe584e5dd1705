// Force-included instead of cpu_prelude.h on a CPU without AVX-512 VNNI: the same
// context, with the x86 intrinsics implemented in portable C by SIMDe (Debian package
// libsimde-dev), so VNNI kernels still run -- emulated, and reported as such.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
