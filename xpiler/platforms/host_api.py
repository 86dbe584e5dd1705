"""Host-side runtime APIs of the platforms: what allocates, copies and frees device memory.

The host-entry analysis reads a CUDA/HIP/BANG host function through these tables, so the
names of each vendor's runtime live here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostApi:
    malloc: frozenset  # f(&ptr, bytes)
    memcpy: frozenset  # f(dst, src, bytes, kind)
    memset: frozenset  # f(ptr, value, bytes)
    free: frozenset
    h2d: frozenset  # copy-kind constants
    d2h: frozenset
    d2d: frozenset


HOST_APIS = {
    "cuda": HostApi(frozenset({"cudaMalloc"}), frozenset({"cudaMemcpy"}), frozenset({"cudaMemset"}),
                    frozenset({"cudaFree"}), frozenset({"cudaMemcpyHostToDevice"}),
                    frozenset({"cudaMemcpyDeviceToHost"}), frozenset({"cudaMemcpyDeviceToDevice"})),
    "hip": HostApi(frozenset({"hipMalloc"}), frozenset({"hipMemcpy"}), frozenset({"hipMemset"}),
                   frozenset({"hipFree"}), frozenset({"hipMemcpyHostToDevice"}),
                   frozenset({"hipMemcpyDeviceToHost"}), frozenset({"hipMemcpyDeviceToDevice"})),
    "mlu": HostApi(frozenset({"cnrtMalloc"}), frozenset({"cnrtMemcpy"}), frozenset({"cnrtMemset"}),
                   frozenset({"cnrtFree"}), frozenset({"CNRT_MEM_TRANS_DIR_HOST2DEV", "cnrtMemcpyHostToDev"}),
                   frozenset({"CNRT_MEM_TRANS_DIR_DEV2HOST", "cnrtMemcpyDevToHost"}),
                   frozenset({"CNRT_MEM_TRANS_DIR_DEV2DEV", "cnrtMemcpyDevToDev"})),
}


# CUDA and HIP runtimes differ only in spelling: (cuda, hip) name pairs.
CUDA_HIP_NAMES = [
    ("cudaMalloc", "hipMalloc"), ("cudaMemcpy", "hipMemcpy"), ("cudaFree", "hipFree"),
    ("cudaMemset", "hipMemset"), ("cudaDeviceSynchronize", "hipDeviceSynchronize"),
    ("cudaGetLastError", "hipGetLastError"), ("cudaGetErrorString", "hipGetErrorString"),
    ("cudaMemcpyHostToDevice", "hipMemcpyHostToDevice"), ("cudaMemcpyDeviceToHost", "hipMemcpyDeviceToHost"),
    ("cudaMemcpyDeviceToDevice", "hipMemcpyDeviceToDevice"), ("cudaSuccess", "hipSuccess"),
    ("cudaError_t", "hipError_t"), ("cudaStream_t", "hipStream_t"),
]


def runtime_renames(source: str, target: str) -> dict[str, str]:
    """Identifier renames that move host code between two runtimes with the same model."""
    if (source, target) == ("cuda", "hip"):
        return dict(CUDA_HIP_NAMES)
    if (source, target) == ("hip", "cuda"):
        return {h: c for c, h in CUDA_HIP_NAMES}
    return {}
