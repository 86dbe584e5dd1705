"""Front-ends: what each dialect's constructs become in the IR, and errors with positions."""
import pytest

from xpiler.errors import SourceError
from xpiler.ir import find_all, structural_hash
from xpiler.ir import nodes as N
from xpiler.ir import types as T
from xpiler.ir.entry import host_entry
from xpiler.ir.roles import param_roles
from xpiler.lang import parse_source, print_program

CUDA_ADD = """
__global__ void __launch_bounds__(256) add(const float *__restrict__ a, float *b, float *c, int n) {
  __shared__ float tile[256];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { tile[threadIdx.x] = a[i]; __syncthreads(); c[i] = tile[threadIdx.x] + b[i]; }
}
extern "C" void add_kernel(float *a, float *b, float *c, int n) {
  float *d_a; float *d_b; float *d_c;
  cudaMalloc(&d_a, n * sizeof(float)); cudaMalloc(&d_b, n * sizeof(float)); cudaMalloc(&d_c, n * sizeof(float));
  cudaMemcpy(d_a, a, n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_b, b, n * sizeof(float), cudaMemcpyHostToDevice);
  dim3 block(256);
  dim3 grid((n + 255) / 256);
  add<<<grid, block>>>(d_a, d_b, d_c, n);
  cudaMemcpy(c, d_c, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d_a); cudaFree(d_b); cudaFree(d_c);
}
"""


def roundtrips(text, dialect):
    p = parse_source(text, dialect, "t")
    q = parse_source(print_program(p, format=False), dialect, "t2")
    assert structural_hash(p) == structural_hash(q)
    return p


def test_cuda_kernel_and_host_entry():
    p = roundtrips(CUDA_ADD, "cuda")
    k = p.function("add")
    assert k.kind == "kernel" and k.launch_bounds == (N.Const(256, T.I32),)
    assert k.params[0].dtype == T.PointerType(T.F32, "", True, True)
    decl = find_all(k, N.Decl, lambda d: d.name == "tile")[0]
    assert decl.scope == "shared" and decl.dtype.shape == (N.Const(256, T.I32),)
    assert {s.name for s in find_all(k, N.Special)} == {"blockIdx.x", "blockDim.x", "threadIdx.x"}
    assert find_all(k, N.Barrier)[0].scope == "block"
    assert param_roles(k, p) == {"a": "in", "b": "in", "c": "out", "n": "scalar"}
    e = host_entry(p)
    assert e.name == "add_kernel" and not e.synthesized
    roles = {b.name: b.role for b in e.buffers}
    assert roles == {"a": "in", "b": "in", "c": "out"}
    (launch,) = e.launches
    assert launch.kernel == "add"
    from xpiler.lang.printer import CPrinter
    assert CPrinter().expr(launch.grid[0]) == "(n + 255) / 256"
    assert CPrinter().expr(launch.block[0]) == "256"
    assert [CPrinter().expr(a) for a in launch.args] == ["a", "b", "c", "n"]


def test_wmma_fragments_and_calls():
    src = """
#define BM 16
__global__ void g(half *A, half *B, float *C) {
  wmma::fragment<wmma::matrix_a, BM, 16, 16, half, wmma::row_major> a;
  nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, half, nvcuda::wmma::col_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
  wmma::fill_fragment(c, 0.0f);
  wmma::load_matrix_sync(a, A, 16);
  nvcuda::wmma::load_matrix_sync(b, B, 16);
  wmma::mma_sync(c, a, b, c);
  for (int i = 0; i < c.num_elements; i++) c.x[i] += 1.0f;
  wmma::store_matrix_sync(C, c, 16, wmma::mem_row_major);
}"""
    p = roundtrips(src, "cuda")
    frags = {d.name: d.dtype for d in find_all(p, N.Decl)}
    assert frags["a"] == T.FragmentType("matrix_a", N.Var("BM", T.I32), N.Const(16, T.I32), N.Const(16, T.I32), T.F16, "row_major")
    assert frags["b"].layout == "col_major" and frags["c"].use == "accumulator"
    calls = [c.func for c in find_all(p, N.Call)]
    assert calls.count("wmma::load_matrix_sync") == 2  # the nvcuda:: spelling is canonicalized
    assert any(isinstance(m, N.Member) and m.field == "x" for m in find_all(p, N.Member))


def test_hip_vector_types_and_mfma():
    src = """
#define K 4
__global__ void g(const float *A, float *D) {
  using float4 = __attribute__((__vector_size__(K * sizeof(float)))) float;
  float4 d = {0};
  d = __builtin_amdgcn_mfma_f32_16x16x4f32(A[threadIdx.x], A[threadIdx.y], d, 0, 0, 0);
  for (int i = 0; i < 4; ++i) D[threadIdx.y * 4 + i] = d[i];
}"""
    p = roundtrips(src, "hip")
    alias = find_all(p, N.TypeAlias)[0]
    assert alias.dtype == T.VectorType(T.F32, 4, "float4")
    decl = find_all(p, N.Decl, lambda d: d.name == "d")[0]
    assert decl.dtype == T.VectorType(T.F32, 4, "float4")
    assert find_all(p, N.Call)[0].func == "__builtin_amdgcn_mfma_f32_16x16x4f32"


def test_bang_qualifiers_memcpy_and_task_indices():
    src = """
extern "C" __mlu_global__ void k(float *in, float *out, int n) {
  __nram__ float buf[1024];
  __wram__ int8 w[256];
  __nram__ half vla[n * 4];
  int t = clusterId * 4 + coreId;
  __memcpy(buf, in + t * 256, 256 * sizeof(float), GDRAM2NRAM);
  __memcpy(buf, in, 64, GDRAM2NRAM, 64, 128, 3);
  __bang_add(buf, buf, buf, 256);
  __sync_all();
  if (taskId < taskDim) __memcpy(out + t * 256, buf, 1024, NRAM2GDRAM);
}"""
    p = roundtrips(src, "mlu")
    k = p.function("k")
    assert k.kind == "kernel" and k.extern_c
    scopes = {d.name: (d.scope, d.dtype) for d in find_all(k, N.Decl)}
    assert scopes["buf"][0] == "nram" and scopes["w"][0] == "wram"
    assert scopes["w"][1].elem == T.I8 and scopes["vla"][1].elem == T.F16
    assert isinstance(scopes["vla"][1].shape[0], N.Binary)  # variable-length NRAM array
    dmas = find_all(k, N.Dma)
    assert [d.direction for d in dmas] == ["GDRAM2NRAM", "GDRAM2NRAM", "NRAM2GDRAM"]
    assert len(dmas[1].strides) == 3
    assert {s.name for s in find_all(k, N.Special)} == {"clusterId", "coreId", "taskId", "taskDim"}
    assert find_all(k, N.Barrier)[0].scope == "all"
    assert param_roles(k, p) == {"in": "in", "out": "out", "n": "scalar"}
    e = host_entry(p, {"launch": {"task_dim": [16, 1, 1], "func_type": "UNION1"}})
    assert e.synthesized and e.launches[0].func_type == "UNION1"


def test_vnni_and_cpp_casts():
    src = """
extern "C" void dot(float *A, float *B, float *out) {
  uint8_t a[64]; int8_t b[64]; int32_t r[16];
  __m512i acc = _mm512_setzero_si512();
  for (int i = 0; i < 64; i++) { a[i] = static_cast<uint8_t>(A[i]); b[i] = (int8_t)B[i]; }
  acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(reinterpret_cast<const void *>(a)), _mm512_loadu_si512(b));
  _mm512_storeu_si512(r, acc);
  out[0] = std::numeric_limits<float>::max() > 0 ? (float)r[0] : 0.0f;
}"""
    p = roundtrips(src, "cpu")
    f = p.function("dot")
    assert f.kind == "kernel"
    acc = find_all(f, N.Decl, lambda d: d.name == "acc")[0]
    assert acc.dtype == T.VectorType(T.I64, 8, "__m512i")
    kinds = {c.kind for c in find_all(f, N.Cast)}
    assert kinds >= {"static", "reinterpret", "c"}


def test_for_loop_forms():
    src = """extern "C" void f(float *x) {
  for (int i = 0, p = 0; i < 8; ++i, ++p) { x[p] = 1.0f; }
  for (int j = 8; j > 0; j -= 2) x[j] = 0.0f;
  int k;
  for (k = 0; 10 > k; k++) x[k] += 1.0f;
}"""
    p = roundtrips(src, "cpu")
    loops = find_all(p, N.For)
    assert [l.var for l in loops] == ["i", "j", "k"]
    assert loops[1].step == N.Const(-2, T.I32) and loops[1].cmp == ">"
    assert loops[2].cmp == "<" and not loops[2].declared


@pytest.mark.parametrize("src,line,col,what", [
    ("__global__ void k(float *a) {\n  a[0] = ;\n}", 2, 8, "syntax"),
    ("__global__ void k(float *a) {\n  int i = 0;\n  while (i < 3) { a[i++] = 0; }\n}", 3, 21, "update_expression"),
    ("struct S { int x; };\n", 1, 1, "struct"),
    ("__global__ void k(float *a) {\n  for (;;) {}\n}", 2, 3, "for"),
    ("__global__ void k(float *a) {\n  switch (0) { default: break; }\n}", 2, 3, "switch statement"),
])
def test_errors_have_positions(src, line, col, what):
    with pytest.raises(SourceError) as e:
        parse_source(src, "cuda", "bad.cu")
    assert e.value.span.file == "bad.cu"
    assert (e.value.span.line, e.value.span.col) == (line, col)
    assert str(e.value).startswith(f"bad.cu:{line}:{col}: error:")
    assert e.value.construct == what
