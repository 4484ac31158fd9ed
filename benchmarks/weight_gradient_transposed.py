"""A weight gradient with fewer outputs than inputs, BERT-Mini's feed-forward output layer
(dW [256, 1024] = dy^T x over 4,096 tokens), as one band of Graft's split over two threads:
128 rows of dW = dy^T x (what BLAS.matmul ran before session 13) against 512 rows of the
transposed product dW^T = x^T dy (what Linear.backwardParameters runs now, before adding it
transposed). Single-threaded cblas_sgemm through ctypes. The two run in pairs, one right after
the other, 40 times, and the median ratio of each pair's times is reported: on a VM whose speed
drifts, timing one variant many times and then the other compares two machines.

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 python3 benchmarks/weight_gradient_transposed.py

(Set OPENBLAS_CORETYPE to the kernel `graft` picks on the machine; see ARCHITECTURE.md.)
"""
import ctypes, statistics, time
import numpy as np

lib = ctypes.CDLL("libopenblas.so.0"); lib.openblas_set_num_threads(1)
f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
RM, NT, T = 101, 111, 112
R, O, I = 4096, 256, 1024
dy = np.random.rand(R, O).astype(np.float32); x = np.random.rand(R, I).astype(np.float32)
g = np.zeros((O, I), np.float32); gt = np.zeros((I, O), np.float32)
band_dw = lambda: lib.cblas_sgemm(RM, T, NT, 128, I, R, 1.0, dy.ctypes.data, O, x.ctypes.data, I, 1.0, g.ctypes.data, I)
band_dwt = lambda: lib.cblas_sgemm(RM, T, NT, 512, O, R, 1.0, x.ctypes.data, I, dy.ctypes.data, O, 0.0, gt.ctypes.data, O)
for _ in range(3):
    band_dw(); band_dwt()
ta, tb, ratios = [], [], []
for _ in range(40):
    t0 = time.perf_counter(); band_dw(); t1 = time.perf_counter(); band_dwt(); t2 = time.perf_counter()
    ta.append(t1 - t0); tb.append(t2 - t1); ratios.append((t1 - t0) / (t2 - t1))
flops = 2 * 128 * I * R   # the same work in both bands
for name, ts in (("128x1024x4096 TN: a 128-row band of dW", ta), ("512x256x4096 TN: a 512-row band of dW^T", tb)):
    m = statistics.median(ts)
    print(f"{name:42s} median {m * 1e3:6.2f} ms {flops / m / 1e9:6.1f} GFLOP/s")
q = np.percentile(ratios, [25, 50, 75])
print(f"time of the dW band / the dW^T band, per pair: median {q[1]:.3f} (quartiles {q[0]:.3f}-{q[2]:.3f})")
