"""Whether Graft's row bands of a product (BLAS.matmul's split over threads) give the single
cblas_sgemm call's bits on this machine's OpenBLAS, for a given row granularity G and smallest
band size (M N K of the smallest band must exceed MIN). It mirrors BLAS.bandStart and
BLAS.sliceCount and tries 2 and 3 bands over 275 shapes, every transpose, beta 0 and 1.

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 G=16 MIN=1000000 python3 benchmarks/gemm_band_bits.py

Seen with Debian's OpenBLAS 0.3.21 (session 13): G=16 exact on SkylakeX, Cooperlake and
Prescott but not Haswell (G=48 exact on Haswell, Zen, Prescott); with MIN=262144 (about the rule before
session 13, which split any product over 262,144), bands under ~10^6 multiply-adds differ on the AVX-512 kernels (OpenBLAS's small-matrix and direct
kernels sum in another order). A core the CPU lacks fails with an illegal instruction.
"""
import ctypes, itertools, os
import numpy as np

lib = ctypes.CDLL("libopenblas.so.0"); lib.openblas_set_num_threads(1)
lib.openblas_get_corename.restype = ctypes.c_char_p
f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
RM, NT, T = 101, 111, 112
G = int(os.environ.get("G", "16"))
MIN = float(os.environ.get("MIN", "1000000"))

def band_start(s, slices, m):
    return (2 * s * m + slices * G) // (2 * slices * G) * G

def band(s, slices, m):
    return band_start(s, slices, m), (m if s == slices - 1 else band_start(s + 1, slices, m))

def slice_count(m, n, k, threads):
    s = max(1, min(threads, m // G))
    while s > 1 and min(hi - lo for lo, hi in (band(j, s, m) for j in range(s))) * n * k <= MIN:
        s -= 1
    return s

rng = np.random.default_rng(1)
bad = tot = 0
shapes = [(m, n, k) for m in (64, 96, 128, 200, 256, 300, 430, 600, 860, 1024, 2048)
          for n in (13, 64, 256, 301, 768) for k in (33, 64, 96, 256, 1024)]
for (m, n, k) in shapes:
    for threads in (2, 3):
        sc = slice_count(m, n, k, threads)
        if sc <= 1:
            continue
        for ta, tb in itertools.product([0, 1], [0, 1]):
            for beta in (0.0, 1.0):
                a = rng.standard_normal(m * k).astype(np.float32)
                b = rng.standard_normal(k * n).astype(np.float32)
                c0 = rng.standard_normal(m * n).astype(np.float32)
                lda = m if ta else k; ldb = k if tb else n
                whole = c0.copy()
                lib.cblas_sgemm(RM, T if ta else NT, T if tb else NT, m, n, k, 1.0, a.ctypes.data, lda,
                                b.ctypes.data, ldb, beta, whole.ctypes.data, n)
                split = c0.copy()
                for s in range(sc):
                    lo, hi = band(s, sc, m)
                    aoff = (lo if ta else lo * lda) * 4
                    lib.cblas_sgemm(RM, T if ta else NT, T if tb else NT, hi - lo, n, k, 1.0, a.ctypes.data + aoff, lda,
                                    b.ctypes.data, ldb, beta, split.ctypes.data + lo * n * 4, n)
                tot += 1
                if not np.array_equal(split.view(np.uint32), whole.view(np.uint32)):
                    bad += 1
                    if bad <= 20:
                        print("differs:", f"{m}x{n}x{k}", "TN"[not ta] + "TN"[not tb], "beta", beta, "bands", sc)
print(f"{lib.openblas_get_corename().decode()}: G {G}, smallest band M N K > {MIN:.0f}: {tot} splits checked, {bad} differ")
