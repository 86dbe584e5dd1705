// Softmax over each row of a [rows][cols] matrix, the row maximum subtracted first:
// the CPU version of row_softmax.cu, with the same C API.
extern "C" void row_softmax_kernel(float *A, float *C, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    float maxVal = A[r * cols];
    for (int i = 1; i < cols; i++) {
      maxVal = fmaxf(maxVal, A[r * cols + i]);
    }
    float denom = 0.0f;
    for (int i = 0; i < cols; i++) {
      C[r * cols + i] = expf(A[r * cols + i] - maxVal);
      denom += C[r * cols + i];
    }
    for (int i = 0; i < cols; i++) {
      C[r * cols + i] = C[r * cols + i] / denom;
    }
  }
}
