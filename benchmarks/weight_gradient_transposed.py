"""A weight gradient with fewer outputs than inputs, BERT-Mini's feed-forward output layer
(dW [256, 1024] = dy^T x over 4,096 tokens), as one band of Graft's split over two threads:
128 rows of dW = dy^T x (what BLAS.matmul ran before session 13), against 512 rows of the
transposed product dW^T = x^T dy (what Linear.backwardParameters runs now, before adding it
transposed), and both whole. Single-threaded cblas_sgemm through ctypes, medians of 11.

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 python3 benchmarks/weight_gradient_transposed.py

(Set OPENBLAS_CORETYPE to the kernel `graft` picks on the machine; see ARCHITECTURE.md.)
"""
import ctypes, time
import numpy as np

lib = ctypes.CDLL("libopenblas.so.0"); lib.openblas_set_num_threads(1)
f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
RM, NT, T = 101, 111, 112

def bench(name, fn, flops):
    for _ in range(3): fn()
    ts = []
    for _ in range(11):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    m = sorted(ts)[5]
    print(f"{name:46s} {m * 1e3:7.2f} ms {flops / m / 1e9:6.1f} GFLOP/s")

R, O, I = 4096, 256, 1024
dy = np.random.rand(R, O).astype(np.float32); x = np.random.rand(R, I).astype(np.float32)
g = np.zeros((O, I), np.float32); gt = np.zeros((I, O), np.float32)
for _ in range(2):
    bench("128x1024x4096 TN: a 128-row band of dW", lambda: lib.cblas_sgemm(RM, T, NT, 128, I, R, 1.0, dy.ctypes.data, O,
          x.ctypes.data, I, 1.0, g.ctypes.data, I), 2 * 128 * I * R)
    bench("512x256x4096 TN: a 512-row band of dW^T", lambda: lib.cblas_sgemm(RM, T, NT, 512, O, R, 1.0, x.ctypes.data, I,
          dy.ctypes.data, O, 0.0, gt.ctypes.data, O), 2 * 512 * O * R)
    bench("256x1024x4096 TN: dW whole", lambda: lib.cblas_sgemm(RM, T, NT, O, I, R, 1.0, dy.ctypes.data, O,
          x.ctypes.data, I, 1.0, g.ctypes.data, I), 2 * O * I * R)
    bench("1024x256x4096 TN: dW^T whole", lambda: lib.cblas_sgemm(RM, T, NT, I, O, R, 1.0, x.ctypes.data, I,
          dy.ctypes.data, O, 0.0, gt.ctypes.data, O), 2 * O * I * R)
