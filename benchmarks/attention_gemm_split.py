"""The attention's per-head products (32 sequences x 4 heads, T 128, head width 64) as Graft's
engine runs them, one single-threaded cblas_sgemm each through ctypes on the system OpenBLAS,
against the same products cut into 2 or 4 row blocks (under OpenBLAS's small-matrix threshold,
M N K <= 10^6), and the 4096x256x1024 ceiling product. Medians of 9 timings.

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 python3 benchmarks/attention_gemm_split.py

(Set OPENBLAS_CORETYPE to the kernel `graft` picks on the machine: Debian's OpenBLAS 0.3.21 falls
back to Prescott on processors it does not know; see ARCHITECTURE.md.)
"""
import ctypes, numpy as np, time
lib = ctypes.CDLL("libopenblas.so.0"); lib.openblas_set_num_threads(1)
f = ctypes.c_float; i = ctypes.c_int; p = ctypes.c_void_p
lib.cblas_sgemm.argtypes = [i,i,i,i,i,i,f,p,i,p,i,f,p,i]
RM, NT, T = 101, 111, 112
def gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    lib.cblas_sgemm(RM, T if ta else NT, T if tb else NT, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)
B, H, Tn, D = 32, 4, 128, 64; C = H*D
qkv = np.random.rand(B, Tn, 3*C).astype(np.float32)
P = np.random.rand(B*H, Tn, Tn).astype(np.float32)
out = np.zeros((B, Tn, C), np.float32)
qc = np.random.rand(B*H, Tn, D).astype(np.float32); kc = np.random.rand(B*H, Tn, D).astype(np.float32)
def bench(name, fn, flops):
    for _ in range(3): fn()
    ts = []
    for _ in range(9):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort(); m = ts[4]; print(f"{name:45s} {m*1e3:7.2f} ms {flops/m/1e9:6.1f} GFLOP/s")
fl = 2*B*H*Tn*Tn*D
base = qkv.ctypes.data; pb = P.ctypes.data; ob = out.ctypes.data
def scores_strided():
    for bh in range(B*H):
        b, h = divmod(bh, H)
        gemm(0, 1, Tn, Tn, D, base + 4*(b*Tn*3*C + h*D), 3*C, base + 4*(b*Tn*3*C + C + h*D), 3*C, pb + 4*bh*Tn*Tn, Tn)
def scores_contig():
    for bh in range(B*H):
        gemm(0, 1, Tn, Tn, D, qc.ctypes.data + 4*bh*Tn*D, D, kc.ctypes.data + 4*bh*Tn*D, D, pb + 4*bh*Tn*Tn, Tn)
def pv():
    for bh in range(B*H):
        b, h = divmod(bh, H)
        gemm(0, 0, Tn, D, Tn, pb + 4*bh*Tn*Tn, Tn, base + 4*(b*Tn*3*C + 2*C + h*D), 3*C, ob + 4*(b*Tn*C + h*D), C)
def dv():  # P^T dY : m=T(k), n=D, k=T
    for bh in range(B*H):
        b, h = divmod(bh, H)
        gemm(1, 0, Tn, D, Tn, pb + 4*bh*Tn*Tn, Tn, ob + 4*(b*Tn*C + h*D), C, base + 4*(b*Tn*3*C + 2*C + h*D), 3*C)
bench("scores QK^T strided (lda 768)", scores_strided, fl)
bench("scores QK^T contiguous (lda 64)", scores_contig, fl)
bench("PV", pv, fl)
bench("dV = P^T dY", dv, fl)
x = np.random.rand(4096, 256).astype(np.float32); w = np.random.rand(1024, 256).astype(np.float32); y = np.zeros((4096, 1024), np.float32)
bench("ceiling 4096x256x1024", lambda: gemm(0, 1, 4096, 1024, 256, x.ctypes.data, 256, w.ctypes.data, 256, y.ctypes.data, 1024), 2*4096*256*1024)
def scores_split(parts):
    mm = Tn // parts
    for bh in range(B*H):
        b, h = divmod(bh, H)
        for s in range(parts):
            gemm(0, 1, mm, Tn, D, base + 4*(b*Tn*3*C + s*mm*3*C + h*D), 3*C, base + 4*(b*Tn*3*C + C + h*D), 3*C, pb + 4*(bh*Tn*Tn + s*mm*Tn), Tn)
def pv_split(parts):
    mm = Tn // parts
    for bh in range(B*H):
        b, h = divmod(bh, H)
        for s in range(parts):
            gemm(0, 0, mm, D, Tn, pb + 4*(bh*Tn*Tn + s*mm*Tn), Tn, base + 4*(b*Tn*3*C + 2*C + h*D), 3*C, ob + 4*(b*Tn*C + s*mm*C + h*D), C)
def dv_split(parts):  # m = Tk rows of dV
    mm = Tn // parts
    for bh in range(B*H):
        b, h = divmod(bh, H)
        for s in range(parts):
            gemm(1, 0, mm, D, Tn, pb + 4*(bh*Tn*Tn + s*mm), Tn, ob + 4*(b*Tn*C + h*D), C, base + 4*(b*Tn*3*C + s*mm*3*C + 2*C + h*D), 3*C)
for parts in (2, 4):
    bench(f"scores split M/{parts}", lambda: scores_split(parts), fl)
    bench(f"PV split M/{parts}", lambda: pv_split(parts), fl)
    bench(f"dV split M/{parts}", lambda: dv_split(parts), fl)
