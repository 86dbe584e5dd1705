"""GPU lowering stages broadcast reads (every thread of a block reads the same elements,
at an index independent of the thread) in __shared__ memory, and declines with a reason
where that is not provably correct; the results pass the differential verifier."""
import pytest

from xpiler.translate import TranslateOptions, translate_file

MATVEC = """extern "C" void mv(float *A, float *x, float *y) {
  for (int i = 0; i < 300; ++i) {
    float acc = 0.0f;
    for (int k = 0; k < 128; ++k) {
      acc += A[i * 128 + k] * x[k];
    }
    y[i] = acc;
  }
}
"""

# a 2-D nest (both axes collapsed) with a shifted window of the weights
STENCIL = """extern "C" void conv(float *in, float *w, float *out) {
  for (int r = 0; r < 20; ++r) {
    for (int c = 0; c < 30; ++c) {
      float s = 0.0f;
      for (int t = 0; t < 5; ++t) {
        s += in[r * 34 + c + t] * w[t + 3];
      }
      out[r * 30 + c] = s;
    }
  }
}
"""

# w is read at a thread-independent index but also written in the phase: no promotion
WRITTEN = """extern "C" void wr(float *w, float *y) {
  for (int i = 0; i < 300; ++i) {
    float s = 0.0f;
    for (int k = 0; k < 4; ++k) {
      s += w[k] * y[i];
    }
    w[4 + i] = s;
  }
}
"""

# the read is conditional: staging could read what the source never reads
CONDITIONAL = """extern "C" void cond(float *x, float *y) {
  for (int i = 0; i < 300; ++i) {
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) {
      if (y[i] > 0.5f) {
        s += x[k];
      }
    }
    y[i] = s;
  }
}
"""


def _translate(tmp_path, name, text, target):
    src = tmp_path / name
    src.write_text(text)
    return translate_file(str(src), TranslateOptions(target=target, seeds=(0, 1)))


@pytest.mark.parametrize("target", ["cuda", "hip"])
def test_matvec_vector_is_staged_in_shared_memory(tmp_path, target):
    t = _translate(tmp_path, "mv.cpp", MATVEC, target)
    assert t.verified
    assert "__shared__ float xpiler_sh_x[128]" in t.text and "__syncthreads()" in t.text
    assert "xpiler_sh_x[k]" in t.text
    # the barrier comes before the bounds guard: every thread of the block reaches it
    assert t.text.index("__syncthreads()") < t.text.index("if (xpiler_idx <")
    assert any("x[0..128)" in n and "__shared__" in n for n in t.report["notes"])
    assert not any("A: not promoted" in n for n in t.report["notes"])  # A[i*128+k] is per thread


def test_shifted_window_of_a_2d_nest_is_staged(tmp_path):
    t = _translate(tmp_path, "conv.cpp", STENCIL, "cuda")
    assert t.verified
    assert "__shared__ float xpiler_sh_w[5]" in t.text and "__syncthreads()" in t.text
    assert "xpiler_sh_w[t + 3 - 3]" in t.text
    assert any("w[3..8)" in n for n in t.report["notes"])


def test_buffer_written_in_the_phase_is_not_promoted(tmp_path):
    t = _translate(tmp_path, "wr.cpp", WRITTEN, "cuda")
    assert t.verified
    assert "__shared__" not in t.text and "__syncthreads" not in t.text
    assert any("w: not promoted to __shared__ (it is written in the phase)" in n for n in t.report["notes"])


def test_conditional_read_is_not_promoted(tmp_path):
    t = _translate(tmp_path, "cond.cpp", CONDITIONAL, "hip")
    assert t.verified
    assert "__shared__" not in t.text
    assert any("x: not promoted to __shared__ (a read of it is conditional)" in n for n in t.report["notes"])
