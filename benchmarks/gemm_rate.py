#!/usr/bin/env python3
"""GEMM rate of PyTorch against Graft's engine on the BERT-Mini shapes (issue 11).

The pretraining profile (`graft bench pretrain --profile`) says 85-88% of a BERT-Mini update is
GEMM, so the speed ratio against PyTorch is decided by the two libraries' GEMM rates on these
shapes: PyTorch's (MKL / oneDNN) against OpenBLAS through Graft's engine. This script times
`y = x @ W.T` (what `nn.Linear` and Graft's `Linear` compute) on the shapes `graft bench engine`
uses, and the attention-score product `Q K^T` batched over heads, at each thread count, and runs
`graft bench engine --json` alternately with it in one run (each side in a fresh process).

Usage:
    python3 benchmarks/gemm_rate.py --graft .build/release/graft --threads 1 2 --rounds 2 [--json OUT]

Written against torch 2.13.0+cpu.
"""
import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = [(4096, 256, 1024), (4096, 1024, 256), (4096, 256, 256)]  # M x K x N, as graft bench engine
ATTENTION = (128, 128, 64)  # batch x t x d: S = Q K^T per (sequence, head)


def torch_side(threads, repeats):
    """Median GFLOP/s of each shape in this (fresh) process at `threads` threads."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for m, k, n in SHAPES:
        x = torch.rand(m, k) - 0.5
        w = torch.rand(n, k) - 0.5
        y = torch.empty(m, n)
        flops = 2.0 * m * n * k
        times = []
        for rep in range(repeats * 3 + 2):
            t0 = time.perf_counter_ns()
            torch.matmul(x, w.t(), out=y)
            t1 = time.perf_counter_ns()
            if rep >= 2:
                times.append(t1 - t0)
        times.sort()
        out[f"gemm_{m}x{k}x{n}_gflops_{threads}t"] = flops / times[len(times) // 2]
    b, t, d = ATTENTION
    q = torch.rand(b, t, d) - 0.5
    kk = torch.rand(b, t, d) - 0.5
    s = torch.empty(b, t, t)
    flops = 2.0 * b * t * t * d
    times = []
    for rep in range(repeats * 3 + 2):
        t0 = time.perf_counter_ns()
        torch.bmm(q, kk.transpose(1, 2), out=s)
        t1 = time.perf_counter_ns()
        if rep >= 2:
            times.append(t1 - t0)
    times.sort()
    out[f"attention_gemm_gflops_{threads}t"] = flops / times[len(times) // 2]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graft", help="graft binary: run `graft bench engine --json` alternately")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", help="write the per-round figures as JSON Lines here")
    p.add_argument("--torch-only", type=int, help=argparse.SUPPRESS)  # child process: threads
    args = p.parse_args()
    if args.torch_only:
        print(json.dumps(torch_side(args.torch_only, args.repeats)))
        return
    rows = []
    for rnd in range(args.rounds):
        sides = ["torch", "graft"] if rnd % 2 == 0 else ["graft", "torch"]
        for side in sides:
            if side == "graft" and not args.graft:
                continue
            load = os.getloadavg()[0]
            if side == "torch":
                res = {}
                for t in args.threads:
                    r = subprocess.run([sys.executable, __file__, "--torch-only", str(t), "--repeats", str(args.repeats)],
                                       check=True, capture_output=True, text=True)
                    res.update(json.loads(r.stdout))
            else:
                r = subprocess.run([args.graft, "bench", "engine", "--json", "--threads", ",".join(map(str, args.threads)),
                                    "--repeats", str(args.repeats)], check=True, capture_output=True, text=True)
                res = {k: v for k, v in json.loads(r.stdout).items() if k.startswith(("gemm_", "attention_gemm_"))}
            row = {"round": rnd + 1, "side": side, "load": round(load, 2), **{k: round(v, 1) for k, v in res.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    # Medians per side and key, and the ratio Graft / PyTorch on the same key.
    keys = [f"gemm_{m}x{k}x{n}_gflops_{t}t" for t in args.threads for m, k, n in SHAPES] + \
           [f"attention_gemm_gflops_{t}t" for t in args.threads]
    print(f"{'shape':38} {'PyTorch GFLOP/s':>16} {'Graft GFLOP/s':>14} {'Graft/PyTorch':>14}  {'OpenBLAS direct':>16}")
    for key in keys:
        def med(side, k=key):
            v = sorted(r[k] for r in rows if r["side"] == side and k in r)
            return v[len(v) // 2] if v else float("nan")
        raw_key = key.replace("_gflops_", "_cblas_gflops_") if key.startswith("gemm_") else key.replace("gemm_gflops", "gemm_cblas_loop_gflops")
        tv, gv = med("torch"), med("graft")
        raw = [r.get(raw_key) for r in rows if r["side"] == "graft" and raw_key in r]
        raw_s = f"{sorted(raw)[len(raw) // 2]:16.1f}" if raw else f"{'':16}"
        print(f"{key:38} {tv:16.1f} {gv:14.1f} {gv / tv:14.2f}  {raw_s}")


if __name__ == "__main__":
    main()
