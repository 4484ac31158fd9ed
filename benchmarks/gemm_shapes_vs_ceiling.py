#!/usr/bin/env python3
"""Why BERT-Mini's update stays under 80% of the SGEMM ceiling on OpenBLAS's AVX-512 kernels
(issue 11): the products it is made of, against the ceiling's own product, on one thread each.

`graft bench pretrain --profile` (JSON `gemm_shapes_all`) puts the weight gradients
(`dW = dy^T x`: few rows, K = 4,096 tokens) at ~79% of the ceiling and the per-head attention
products (`128x128x64` and kin, one (item, head) per call) at 44-57%. This script times, with
single-threaded `cblas_sgemm` through ctypes (Debian's libopenblas, the library graft links):

  shapes   one band of each product as Graft's two-thread split runs it (the ceiling's
           2048x1024x256 NT band; the weight gradients' 512- and 128-row bands; the same work
           as a K split: full rows over half of K, then the two partials added);
  pairs    two threads (Python threads; ctypes releases the GIL) running a whole weight gradient
           as row bands (what BLAS.matmul does) or as two K halves plus a sum;
  attention  the per-(item, head) products of one layer (batch 32, 4 heads, T 128, d 64) as one
           128-row call each, or as two 64-row calls (which OpenBLAS 0.3.21 hands to its
           small-matrix kernels, no packing, below 100^3 multiply-adds).

Configurations alternate round by round (the VM's speed drifts); medians are printed.

    OPENBLAS_NUM_THREADS=1 python3 benchmarks/gemm_shapes_vs_ceiling.py [--rounds 20]

Set OPENBLAS_CORETYPE to the kernel `graft bench engine` names, if it differs from the library's choice.
"""
import argparse, ctypes, os, statistics, threading, time
import numpy as np

lib = ctypes.CDLL("libopenblas.so.0")
lib.openblas_set_num_threads(1)
f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
lib.openblas_get_corename.restype = ctypes.c_char_p
RM, N, T = 101, 111, 112


def gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, alpha=1.0):
    """Row-major cblas_sgemm on raw addresses."""
    lib.cblas_sgemm(RM, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


def timed(cases, rounds, flops):
    """Alternates the cases `rounds` times; returns the median GFLOP/s of each."""
    for fn in cases.values():
        fn(); fn()
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            t0 = time.perf_counter(); fn(); times[k].append(time.perf_counter() - t0)
    return {k: (flops[k] if isinstance(flops, dict) else flops) / statistics.median(v) * 1e-9 for k, v in times.items()}


def both(f1, f2):
    a, b = threading.Thread(target=f1), threading.Thread(target=f2)
    a.start(); b.start(); a.join(); b.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    print(f"OpenBLAS kernels: {lib.openblas_get_corename().decode()}")
    rng = np.random.default_rng(0)
    R = 4096
    rand = lambda *s: (rng.random(s) - 0.5).astype(np.float32)

    # One band of each product, single-threaded (same multiply-adds as the ceiling's band).
    dy, x, w, a4 = rand(R, 1024), rand(R, 1024), rand(1024, 256), rand(R, 256)
    c = np.zeros((2048, 1024), np.float32)
    A = lambda arr, off=0: arr.ctypes.data + 4 * off
    work = 2 * 2048 * 1024 * 256
    cases = {
        "ceiling band 2048x1024x256 NT": lambda: gemm(N, T, 2048, 1024, 256, A(a4), 256, A(w), 256, 0.0, A(c), 1024),
        "dW band 512x256x4096 TN": lambda: gemm(T, N, 512, 256, R, A(dy), 1024, A(x), 1024, 1.0, A(c), 1024),
        "dW^T band 256x512x4096 TN": lambda: gemm(T, N, 256, 512, R, A(x), 1024, A(dy), 1024, 1.0, A(c), 1024),
        "dW K half 1024x256x2048 TN": lambda: gemm(T, N, 1024, 256, 2048, A(dy), 1024, A(x), 1024, 1.0, A(c), 1024),
        "dW 4 bands 128x256x4096 TN": lambda: [gemm(T, N, 128, 256, R, A(dy), 1024, A(x), 1024, 1.0, A(c), 1024) for _ in range(4)],
    }
    print("\nshapes: one thread, the same multiply-adds as one band of the ceiling")
    for k, v in timed(cases, args.rounds, work).items():
        print(f"  {k:34} {v:7.1f} GFLOP/s")

    # Whole weight gradients on two threads: row bands against K halves + sum.
    print("\npairs: a whole weight gradient dW[M, N] = dy^T x over 4,096 rows on two threads")
    for M, Nn in [(1024, 256), (768, 256), (256, 256)]:
        dy, x = rand(R, M), rand(R, Nn)
        dw, p0, p1 = np.zeros((M, Nn), np.float32), np.zeros((M, Nn), np.float32), np.zeros((M, Nn), np.float32)
        h = M // 2

        def bands():
            both(lambda: gemm(T, N, h, Nn, R, A(dy), M, A(x), Nn, 1.0, A(dw), Nn),
                 lambda: gemm(T, N, M - h, Nn, R, A(dy, h), M, A(x), Nn, 1.0, A(dw, h * Nn), Nn))

        def k_halves():
            both(lambda: gemm(T, N, M, Nn, 2048, A(dy), M, A(x), Nn, 0.0, A(p0), Nn),
                 lambda: gemm(T, N, M, Nn, 2048, A(dy, 2048 * M), M, A(x, 2048 * Nn), Nn, 0.0, A(p1), Nn))
            np.add(p0, p1, out=p0); np.add(dw, p0, out=dw)

        r = timed({"row bands": bands, "K halves + sum": k_halves}, args.rounds, 2 * M * Nn * R)
        print(f"  {M}x{Nn}x4096 TN: " + "   ".join(f"{k} {v:6.1f} GFLOP/s" for k, v in r.items()))

    # Attention: the per-(item, head) products of one layer.
    print("\nattention: 128 (item, head) products of one layer, T 128, d 64, one thread")
    t, d, S, B = 128, 64, 768, 32
    qkv, P = rand(B * t, S), np.abs(rand(B, t, t))
    out, sc = np.zeros((B * t, 256), np.float32), np.zeros((t, t), np.float32)

    def layer(kind, rows):
        for b in range(B):
            for hd in range(4):
                q = A(qkv, b * t * S + hd * d); k = q + 4 * 256; v = q + 4 * 512; pp = A(P, b * t * t)
                for r0 in range(0, t, rows):
                    if kind == "S = Q K^T": gemm(N, T, rows, t, d, q + 4 * r0 * S, S, k, S, 0.0, A(sc, r0 * t), t, 0.125)
                    elif kind == "Y = P V": gemm(N, N, rows, d, t, pp + 4 * r0 * t, t, v, S, 0.0, A(out, b * t * 256 + r0 * 256), 256)
                    elif kind == "dV = P^T dY": gemm(T, N, rows, d, t, pp + 4 * r0, t, v, S, 0.0, A(out, b * t * 256 + r0 * 256), 256)
                    elif kind == "dQ = dS K": gemm(N, N, rows, d, t, pp + 4 * r0 * t, t, k, S, 0.0, A(out, b * t * 256 + r0 * 256), 256)
                    elif kind == "dP = dY V^T": gemm(N, T, rows, t, d, q + 4 * r0 * S, S, v, S, 0.0, A(sc, r0 * t), t)

    kinds = ["S = Q K^T", "Y = P V", "dV = P^T dY", "dQ = dS K", "dP = dY V^T"]
    cases = {(kd, rows): (lambda kd=kd, rows=rows: layer(kd, rows)) for kd in kinds for rows in (128, 64)}
    r = timed(cases, max(3, args.rounds // 2), 2 * B * 4 * t * t * d)
    for kd in kinds:
        print(f"  {kd:12} one 128-row call {r[(kd, 128)]:6.1f} GFLOP/s   two 64-row calls (small kernels) {r[(kd, 64)]:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
    os._exit(0)   # skip interpreter teardown (two OpenBLAS copies, numpy's and this one, are loaded)
