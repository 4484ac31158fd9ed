#!/usr/bin/env python3
"""Cost model of Graft's data-parallel training across machines (BENCHMARKS.md, "Data-parallel
training"). Inputs are measured on one machine: compute seconds per update of one rank and the
gradient floats, split into the encoder blocks (whose buckets start while backward runs) and the
rest (embeddings tied to the LM head, pooler, head: reduced after backward).

Ring all-reduce of S bytes over N ranks: 2(N-1)/N * S / BW + 2(N-1) * alpha (alpha: per-message
latency and software overhead). A bucket can start only when the block that completes it has
finished backward (Graft reports finished blocks, not finer), so a bucket is k of the L blocks:
  blocks: L/k buckets, T_blk = 2(N-1)/N * B_blk / BW + (L/k) * 2(N-1) * alpha; they hide behind
          the backward that follows the first bucket, W = T_bwd * (1 - k/L), and the last bucket
          always ends after backward: exposed_blk = max(T_ring(k/L * B_blk), T_blk - W)
  rest:   exposed_rest = T_ring(B_rest) (embeddings tied to the LM head, pooler, head: their
          sums start after backward)
  efficiency E(N) = T_c / (T_c + exposed_blk + exposed_rest)   (weak scaling: fixed batch per rank)
T_bwd = 2/3 T_c (backward about twice the forward). Open MPI advances a non-blocking all-reduce
only inside MPI calls (Graft calls MPI_Test after each block), so real overlap is at best this.

  python3 benchmarks/dp_cost_model.py
"""
import math

# name, compute seconds per update of one rank (batch 32 x 128, 1 thread, measured), blocks, block floats, other floats
MODELS = [
    ("BERT-Mini (vocab 8,192)", 2.06, 4, 3_159_040, 5_462_784 - 3_159_040),
    ("BERT-Small (vocab 8,192)", 4.25, 4, 12_609_536, 17_339_904 - 12_609_536),
    ("MiniLM-L6 (vocab 30,522, sequence head)", 4.22, 6, 10_646_784, 22_713_986 - 10_646_784),
]
NETWORKS = [("10 Gb/s", 10e9 / 8, 30e-6), ("100 Gb/s", 100e9 / 8, 5e-6)]   # bytes/s, alpha per message
NODES = [4, 16, 64]


def ring(nbytes, n, bw, alpha):
    return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * alpha


def exposed(tc, layers, blk, rest, n, bw, alpha, k):
    tbwd = 2 / 3 * tc
    buckets = math.ceil(layers / k)
    tblk = 2 * (n - 1) / n * blk / bw + buckets * 2 * (n - 1) * alpha
    window = tbwd * (1 - k / layers)
    return max(ring(blk * k / layers, n, bw, alpha), tblk - window) + ring(rest, n, bw, alpha)


print("| model | gradient (blocks + rest) | network | N | ring all-reduce | exposed | efficiency, compute as measured | best bucket | efficiency, compute 8x faster | best bucket |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, tc, layers, blk_f, rest_f in MODELS:
    blk, rest = 4 * blk_f, 4 * rest_f
    for net, bw, alpha in NETWORKS:
        for n in NODES:
            row = []
            for t in (tc, tc / 8):
                e, k = min((exposed(t, layers, blk, rest, n, bw, alpha, k), k) for k in range(1, layers + 1))
                row.append((t, e, k))
            (t1, e1, k1), (t8, e8, k8) = row
            print(f"| {name} | {(blk + rest) / 1e6:.1f} MB ({blk / 1e6:.1f} + {rest / 1e6:.1f}) | {net} | {n}"
                  f" | {ring(blk + rest, n, bw, alpha) * 1e3:.1f} ms | {e1 * 1e3:.1f} ms | {t1 / (t1 + e1):.1%}"
                  f" | {k1} block{'s' if k1 > 1 else ''} ({k1 * blk / layers / 2**20:.1f} MiB) | {t8 / (t8 + e8):.1%}"
                  f" | {k8} block{'s' if k8 > 1 else ''} ({k8 * blk / layers / 2**20:.1f} MiB) |")
