// Emulator stand-in for the vendor header <device_launch_parameters.h>: the emulator runtime header,
// force-included before the kernel (-include), already declares what kernels use.
#pragma once
