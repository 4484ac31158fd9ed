"""Does OpenBLAS's sgemv (row-major, transposed: the column sums of a bias gradient) give the same bits
when the columns are split into blocks (one block per thread) as in one call? It does not under the
Haswell, SkylakeX, Cooperlake and Zen kernels (Debian's OpenBLAS 0.3.21), hence Kernels.addColumnSums.

    for c in HASWELL SKYLAKEX COOPERLAKE ZEN PRESCOTT; do OPENBLAS_CORETYPE=$c python3 benchmarks/gemv_split_bits.py; done
"""
import ctypes, numpy as np, sys
l = ctypes.CDLL('libopenblas.so.0')
l.openblas_get_corename.restype = ctypes.c_char_p
l.openblas_set_num_threads(1)
print(l.openblas_get_corename())
P = ctypes.POINTER(ctypes.c_float)
def gemv(x, rows, cols, lda, out, ones):
    # cblas_sgemv(RowMajor=101, Trans=112, M, N, alpha, A, lda, X, incX, beta, Y, incY)
    l.cblas_sgemv(101, 112, rows, cols, ctypes.c_float(1), x.ctypes.data_as(P), lda, ones.ctypes.data_as(P), 1, ctypes.c_float(1), out.ctypes.data_as(P), 1)
rng = np.random.default_rng(0)
bad = 0; total = 0
for rows, cols in [(4096, 8192), (4096, 1024), (4096, 768), (4096, 256), (639, 8192), (611, 256), (37, 100), (1000, 3), (4096, 30522), (513, 257)]:
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    ones = np.ones(rows, np.float32)
    base = rng.standard_normal(cols).astype(np.float32)
    ref = base.copy(); gemv(x, rows, cols, cols, ref, ones)
    for g in (16, 64):
        for parts in (2, 3, 4, 8, 16):
            out = base.copy()
            per = -(-cols // parts); per = -(-per // g) * g
            lo = 0
            while lo < cols:
                hi = min(cols, lo + per)
                sub = out[lo:hi]
                l.cblas_sgemv(101, 112, rows, hi - lo, ctypes.c_float(1), x[:, lo:].ctypes.data_as(P), cols, ones.ctypes.data_as(P), 1, ctypes.c_float(1), sub.ctypes.data_as(P), 1)
                lo = hi
            total += 1
            if not np.array_equal(out, ref): bad += 1; print("differs", rows, cols, g, parts, np.abs(out-ref).max())
print(bad, "of", total, "differ")
