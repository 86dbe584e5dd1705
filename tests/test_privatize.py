"""Scratch privatization (loops/privatize.py) and the parallelism it enables: a variable
declared before a loop moves into the loop only when z3 proves every read of it in an
iteration follows a write of the same bytes in that iteration."""
import numpy as np

from xpiler.ir import interp
from xpiler.ir import nodes as N
from xpiler.ir.visitor import find_all
from xpiler.lang import parse_source
from xpiler.passes.loops.dependence import pure_functions
from xpiler.passes.loops.parallel import mark_parallel_loops
from xpiler.passes.loops.privatize import sink_scratch_declarations


def body_of(src: str) -> tuple:
    return parse_source(src, "cpu").functions[-1].body.body


def run(stmts, arrays: dict) -> dict:
    bufs = {k: v.copy() for k, v in arrays.items()}
    interp.run(N.Block(tuple(stmts)), bufs)
    return bufs


def sunk_into(stmts, name):
    """The loop variable of the loop whose body now declares ``name`` (None: not moved)."""
    for f in (x for s in stmts for x in find_all(s, N.For)):
        if any(isinstance(d, N.Decl) and d.name == name for d in f.body.body):
            return f.var
    return None


SCRATCH = """void f(float *a, float *out) {
  float tmp[8];
  float acc;
  for (int i = 0; i < 16; i++) {
    for (int j = 0; j < 4; j++) {
      for (int k = 0; k < 8; k++) tmp[k] = a[(i * 4 + j) * 8 + k] * 2.0f;
      acc = 0.0f;
      for (int k = 0; k < 8; k++) acc += tmp[7 - k];
      out[i * 4 + j] = acc;
    }
  }
}"""


def test_scratch_written_before_read_moves_in_and_the_nest_becomes_parallel():
    stmts = body_of(SCRATCH)
    sunk, notes = sink_scratch_declarations(list(stmts))
    assert sunk_into(sunk, "tmp") == "j" and sunk_into(sunk, "acc") == "j", notes
    assert not any(isinstance(s, N.Decl) for s in sunk)
    marked, why = mark_parallel_loops(sunk)
    assert marked[0].kind == "parallel" and marked[0].body.body[0].kind == "parallel", why
    # without the move, the shared scratch is a dependence of every loop
    unmoved, why = mark_parallel_loops(list(stmts))
    assert all(s.kind != "parallel" for s in unmoved if isinstance(s, N.For)) and why
    arrays = {"a": np.random.default_rng(0).standard_normal(512).astype(np.float32),
              "out": np.zeros(64, np.float32)}
    np.testing.assert_array_equal(run(sunk, arrays)["out"], run(stmts, arrays)["out"])


def test_value_carried_between_iterations_stays_shared():
    stmts = body_of("""void f(float *a, float *out) {
      float carry[2];
      for (int i = 0; i < 16; i++) {
        if (i == 0) carry[0] = 0.0f;
        carry[1] = a[i];
        carry[0] = carry[0] + carry[1];
        out[i] = carry[0];
      }
    }""")
    sunk, notes = sink_scratch_declarations(list(stmts))
    assert sunk_into(sunk, "carry") is None and not notes
    marked, why = mark_parallel_loops(sunk)
    assert marked[-1].kind != "parallel" and "carry" in why[0]


def test_partial_write_keeps_the_array_shared():
    # 7 of 8 elements written, all 8 read: element 7 comes from the previous iteration
    stmts = body_of("""void f(float *a, float *out) {
      float t[8];
      for (int i = 0; i < 16; i++) {
        for (int k = 0; k < 7; k++) t[k] = a[i * 8 + k];
        float s = 0.0f;
        for (int k = 0; k < 8; k++) s += t[k];
        out[i] = s;
      }
    }""")
    sunk, _ = sink_scratch_declarations(list(stmts))
    assert sunk_into(sunk, "t") is None


def test_byte_views_of_scratch_are_followed():
    # bytes written through a uint8_t view, read back as 32-bit words (as lifted SIMD
    # stores look); one byte short and the read is exposed
    src = """void f(unsigned char *a, unsigned int *out) {
      unsigned int w[4];
      for (int i = 0; i < 8; i++) {
        for (int b = 0; b < %d; b++) ((unsigned char *)w)[b] = a[i * 16 + b];
        out[i] = w[0] + w[1] + w[2] + w[3];
      }
    }"""
    sunk, _ = sink_scratch_declarations(list(body_of(src % 16)))
    assert sunk_into(sunk, "w") == "i"
    sunk, _ = sink_scratch_declarations(list(body_of(src % 15)))
    assert sunk_into(sunk, "w") is None


def test_pure_helpers_and_fixed_row_pointers_do_not_serialize():
    prog = parse_source("""float sq(float x) { float y = x * x; return y + 1.0f; }
    float bump(float x) { return sq(x) * 2.0f; }
    void f(float *a, float *out, int n) {
      for (int i = 0; i < n; i++) {
        float *row = out + i * 4;
        for (int j = 0; j < 4; j++) row[j] = bump(a[i * 4 + j]);
      }
    }""", "cpu")
    helpers = [f for f in prog.functions if f.name != "f"]
    pure = pure_functions(helpers)
    assert pure == {"sq", "bump"}
    stmts = list(prog.functions[-1].body.body)
    marked, why = mark_parallel_loops(stmts, pure)
    assert marked[0].kind == "parallel", why
    unmarked, why = mark_parallel_loops(stmts)  # unknown calls may touch anything
    assert unmarked[0].kind != "parallel" and "bump" in why[0]
    # a helper writing through a pointer is not pure
    writer = parse_source("void w(float *p) { p[0] = 1.0f; }", "cpu").functions
    assert pure_functions(writer) == frozenset()


def test_overlapping_row_pointers_stay_serial():
    stmts = body_of("""void f(float *out, int n) {
      for (int i = 0; i < n; i++) {
        float *row = out + i * 2;
        for (int j = 0; j < 4; j++) row[j] = 1.0f;
      }
    }""")
    marked, why = mark_parallel_loops(list(stmts))
    assert marked[0].kind != "parallel" and ("row" in why[0] or "out" in why[0]), why


def test_scratch_kernel_translates_to_threads_and_verifies(tmp_path):
    from xpiler.translate import TranslateOptions, translate_file

    src = tmp_path / "scratch.cpp"
    # `scale` is computed by serial code (it reads memory): the loop using it must stay in
    # the kernel that declares it; the scratch loop before it runs on threads
    src.write_text('extern "C" void scratch(float *a, float *out, float *s) {\n'
                   + SCRATCH.split("{", 1)[1].rsplit("}", 1)[0]
                   + "  float scale = s[0] * 2.0f;\n"
                   "  for (int i = 0; i < 64; i++) s[i + 1] = out[i] * scale;\n}\n")
    tr = translate_file(str(src), TranslateOptions(target="cuda", seeds=(0, 1), extents={"s": 65}))
    assert tr.verified, tr.report.get("verification")
    grids = [line for line in tr.text.splitlines() if "<<<" in line]
    assert len(grids) == 2 and "dim3(1), dim3(1)" not in grids[0], grids  # 64 outputs on threads
    assert "dim3(1), dim3(1)" in grids[1], grids
    assert any("tmp is scratch of each iteration of loop j" in n for n in tr.report["notes"]), tr.report["notes"]
