// Emulator stand-in for the vendor header <cuda_fp16.h>: the emulator runtime header,
// force-included before the kernel (-include), already declares what kernels use.
#pragma once
