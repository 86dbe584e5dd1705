// C[i] = A[i] + B[i] for i < size: the CPU version of vector_add.cu, with the same C API.
extern "C" void vector_add_kernel(float *A, float *B, float *C, int size) {
  for (int i = 0; i < size; i++) {
    C[i] = A[i] + B[i];
  }
}
