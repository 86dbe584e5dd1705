"""The command line: parse output, errors without tracebacks, help that tells the truth."""
import json
import subprocess
import sys

import pytest

from xpiler.cli import build_parser, main

CUDA = """__global__ void scale(const float *x, float *y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = 2.0f * x[i];
}
extern "C" void scale_kernel(float *x, float *y, int n) {
  float *dx; float *dy;
  cudaMalloc(&dx, n * sizeof(float)); cudaMalloc(&dy, n * sizeof(float));
  cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
  scale<<<(n + 127) / 128, 128>>>(dx, dy, n);
  cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dx); cudaFree(dy);
}
"""


def test_parse_json(tmp_path, capsys):
    f = tmp_path / "scale.cu"
    f.write_text(CUDA)
    assert main(["parse", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    (k,) = info["kernels"]
    assert k["name"] == "scale"
    assert [(p["name"], p["role"], p["dtype"]) for p in k["params"]] == [
        ("x", "in", "const float32*"), ("y", "out", "float32*"), ("n", "scalar", "int32")]
    e = info["host_entry"]
    assert e["name"] == "scale_kernel" and not e["synthesized"]
    assert {b["name"]: b["role"] for b in e["buffers"]} == {"x": "in", "y": "out"}
    assert e["launches"][0]["grid"] == ["(n + 127) / 128", "1", "1"]
    assert e["launches"][0]["block"] == ["128", "1", "1"]


def test_parse_text_mentions_roles(tmp_path, capsys):
    f = tmp_path / "scale.cu"
    f.write_text(CUDA)
    assert main(["parse", str(f)]) == 0
    out = capsys.readouterr().out
    assert "host entry: void scale_kernel(" in out and "buffer y: out" in out


def test_syntax_error_is_reported_without_traceback(tmp_path):
    f = tmp_path / "bad.cu"
    f.write_text("__global__ void k(float *a) {\n  a[0] = ;\n}\n")
    r = subprocess.run([sys.executable, "-m", "xpiler.cli", "parse", str(f)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{f}:2:" in r.stderr and "error" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_extension_and_missing_file(tmp_path, capsys):
    f = tmp_path / "k.txt"
    f.write_text("x")
    assert main(["parse", str(f)]) == 2
    assert "cannot tell the dialect" in capsys.readouterr().err
    assert main(["roundtrip", str(tmp_path / "nope.cu")]) == 2


def test_help_lists_every_command():
    text = build_parser().format_help()
    for cmd in ("parse", "roundtrip", "run", "compare"):
        assert cmd in text


def test_run_needs_scalar_values(tmp_path, capsys):
    f = tmp_path / "scale.cu"
    f.write_text(CUDA)
    assert main(["run", str(f)]) == 2
    assert "--arg n=VALUE" in capsys.readouterr().err
