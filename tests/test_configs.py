"""Platform configs load, compile commands are what the compilers expect, and the example
kernels compile with their real compilers (when installed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from xpiler import paths
from xpiler.platforms import config

EXAMPLES = sorted((paths.repo_root() / "examples" / "kernels").glob("*.cu"))


@pytest.mark.parametrize("name", config.PLATFORMS)
def test_config_loads_with_required_keys(name):
    cfg = config.load_platform_config(name)
    assert cfg["name"] == name
    # The dialect names the front-end/printer module (xpiler.lang.<dialect>).
    assert cfg["dialect"] == name
    assert cfg["language"]
    assert cfg["extensions"] and all(ext.startswith(".") for ext in cfg["extensions"])
    assert isinstance(cfg["compiler"]["available"], bool)
    assert cfg["compiler"]["command"]
    assert isinstance(cfg["limits"], dict) and cfg["limits"]
    assert isinstance(cfg["launch"], dict) and cfg["launch"]
    if cfg["compiler"]["available"]:
        prelude = config.prelude_path(name)
        assert prelude is not None and prelude.is_file()


def test_load_returns_independent_copies():
    first = config.load_platform_config("cuda")
    first["compiler"]["flags"].append("-bogus")
    assert "-bogus" not in config.load_platform_config("cuda")["compiler"]["flags"]


def test_unknown_platform_is_rejected():
    with pytest.raises(config.PlatformConfigError, match="unknown platform"):
        config.load_platform_config("tpu")


def test_platform_limits_and_launch_defaults():
    cuda = config.load_platform_config("cuda")["limits"]
    assert (cuda["max_threads_per_block"], cuda["warp_size"]) == (1024, 32)
    assert cuda["shared_mem_per_block_static"] == 48 * 1024
    hip = config.load_platform_config("hip")["limits"]
    assert (hip["max_threads_per_block"], hip["wave_size"]) == (1024, 64)
    assert hip["shared_mem_per_block"] == 64 * 1024
    mlu = config.load_platform_config("mlu")
    # The largest __nram__ footprint in the benchmark (~335 KB) must fit in what the
    # compiler leaves free of its stack reserve.
    usable_nram = mlu["limits"]["nram_bytes"] - mlu["limits"]["nram_stack_reserve_bytes"]
    assert usable_nram >= 335_000
    launch = mlu["launch"]
    assert launch["clusters"] * launch["cores_per_cluster"] == 16
    assert launch["func_type"] == "UNION1"


@pytest.mark.parametrize(
    "suffix, name",
    [(".cu", "cuda"), (".hip", "hip"), (".mlu", "mlu"), (".cpp", "cpu"), (".c", "cpu")],
)
def test_platform_for_extension(suffix, name):
    assert config.platform_for_extension(suffix) == name


def test_compile_command_cuda():
    prelude = str(paths.include_dir() / "cuda_prelude.h")
    assert config.compile_command("cuda", "k.cu", "k.o", syntax_only=False) == [
        "nvcc", "-std=c++17", "-arch=sm_90", "-Wno-deprecated-gpu-targets",
        "-include", prelude, "-c", "-o", "k.o", "-x", "cu", "k.cu",
    ]
    # nvcc has no -fsyntax-only; the check mode stops after PTX generation.
    syntax = config.compile_command("cuda", Path("k.cu"), None, syntax_only=True)
    assert syntax[-6:] == ["-ptx", "-o", os.devnull, "-x", "cu", "k.cu"]
    assert "-c" not in syntax


def test_compile_command_hip_and_env():
    argv = config.compile_command("hip", "k.hip", os.devnull, syntax_only=False)
    assert argv[0] == "hipcc"
    assert "--offload-arch=gfx90a" in argv
    assert argv[argv.index("-include") + 1].endswith("hip_prelude.h")
    assert argv[-3:] == ["-x", "hip", "k.hip"]
    assert "-fsyntax-only" in config.compile_command("hip", "k.hip", None, syntax_only=True)
    env = config.compile_env("hip", base={"PATH": "/bin", "HIP_PLATFORM": "nvidia"})
    # Our config wins over the caller's environment: the AMD back end is the point.
    assert env == {"PATH": "/bin", "HIP_PLATFORM": "amd"}


def test_compile_command_cpu():
    argv = config.compile_command("cpu", "k.c", "k.o", syntax_only=True)
    assert argv[0] == "g++"
    for flag in ("-mavx512f", "-mavx512vnni", "-mavx512vl", "-mavx512bw", "-fsyntax-only"):
        assert flag in argv
    # .c kernels are compiled as C++ (the prelude is C++).
    assert argv[-3:] == ["-x", "c++", "k.c"]


def test_mlu_has_no_real_compiler():
    assert not config.compiler_available("mlu")
    assert config.prelude_path("mlu") is None
    with pytest.raises(config.CompilerUnavailableError, match="vendor-only"):
        config.compile_command("mlu", "k.mlu", None, syntax_only=True)


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"vector_add.cu", "row_softmax.cu", "tiled_gemm.cu", "avgpool2d.cu"} <= names


@pytest.mark.skipif(not config.compiler_available("cuda"), reason="nvcc not installed")
@pytest.mark.parametrize("src", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_with_nvcc(src, tmp_path):
    out = tmp_path / (src.stem + ".o")
    proc = subprocess.run(
        config.compile_command("cuda", src, out, syntax_only=False),
        env=config.compile_env("cuda"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.skipif(not config.compiler_available("cuda"), reason="nvcc not installed")
def test_nvcc_reports_errors_through_prelude(tmp_path):
    # The harness must be able to fail: an undeclared identifier is a compile error.
    src = tmp_path / "broken.cu"
    src.write_text("__global__ void k(float *a) { a[threadIdx.x] = undeclared; }\n")
    proc = subprocess.run(
        config.compile_command("cuda", src, None, syntax_only=True),
        env=config.compile_env("cuda"), capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "undeclared" in proc.stderr


@pytest.mark.skipif(not config.compiler_available("hip"), reason="hipcc not installed")
def test_hip_prelude_compiles_benchmark_style_source(tmp_path):
    # MFMA builtin + GCC vector type + HIP runtime API, with no #include of its own.
    src = tmp_path / "mfma.hip"
    src.write_text(
        "__global__ void k(const float *A, const float *B, float *D) {\n"
        "  using float4 = __attribute__((__vector_size__(4 * sizeof(float)))) float;\n"
        "  float4 d = {0};\n"
        "  d = __builtin_amdgcn_mfma_f32_16x16x4f32(A[threadIdx.x], B[threadIdx.x], d,"
        " 0, 0, 0);\n"
        "  D[threadIdx.x] = d[0] + FLT_MAX * 0.0f;\n"
        "}\n"
        'extern "C" void k_kernel(float *A, float *B, float *D) {\n'
        "  float *d_A; hipMalloc(&d_A, 64 * sizeof(float));\n"
        "  k<<<dim3(1), dim3(16, 4, 1)>>>(d_A, B, D); hipFree(d_A);\n"
        "}\n"
    )
    out = tmp_path / "mfma.o"
    proc = subprocess.run(
        config.compile_command("hip", src, out, syntax_only=False),
        env=config.compile_env("hip"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.skipif(not config.compiler_available("cpu"), reason="g++ not installed")
def test_cpu_prelude_compiles_vnni_source(tmp_path):
    src = tmp_path / "vnni.cpp"
    src.write_text(
        'extern "C" void dot(const uint8_t *a, const int8_t *b, int32_t *out) {\n'
        "  __m512i acc = _mm512_setzero_si512();\n"
        "  acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(a), _mm512_loadu_si512(b));\n"
        "  _mm512_storeu_si512(out, acc);\n"
        "  out[0] += std::numeric_limits<int8_t>::max() * 0 + (int)std::max(0.f, -FLT_MAX);\n"
        "}\n"
    )
    proc = subprocess.run(
        config.compile_command("cpu", src, tmp_path / "vnni.o", syntax_only=False),
        env=config.compile_env("cpu"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
