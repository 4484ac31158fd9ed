#!/usr/bin/env python3
"""Peak memory of sentence embedding: `graft embed` against transformers, alternated in one run.

Each measurement is a fresh process (peak RSS from wait4), so the numbers include the runtime,
the weights and what the batch needs. The transformers side is what sentence-transformers
computes for all-MiniLM-L6-v2 (mean of the last hidden states over real tokens, L2-normalised),
under torch.inference_mode(), batches sorted by length as sentence-transformers sorts them;
its embeddings are compared with Graft's (largest absolute difference).

    python3 benchmarks/embed_memory.py --graft .build/release/graft \
        --model ../shared/data/models/all-MiniLM-L6-v2 --sentences sentences.txt \
        --batch-sizes 8 32 64 [--graft-before OLD_GRAFT] [--threads 1]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TORCH_SIDE = r"""
import sys, json, torch
from transformers import AutoTokenizer, AutoModel
model_dir, path, batch, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]))
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir).eval()
lines = open(path, encoding="utf-8").read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
order = sorted(range(len(lines)), key=lambda i: -len(lines[i]))
vectors = [None] * len(lines)
with torch.inference_mode():
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        enc = tok([lines[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1)
        for j, i in enumerate(idx):
            vectors[i] = e[j].tolist()
with open(out, "w") as f:
    for v in vectors:
        f.write(" ".join(repr(x) for x in v) + "\n")
"""


def run(cmd, env=None):
    """Runs `cmd`; returns (seconds, peak RSS in MB)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return time.time() - t0, usage.ru_maxrss / 1024


def vectors(path):
    with open(path) as f:
        return [[float(x) for x in line.split()] for line in f]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--graft-before")
    ap.add_argument("--model", required=True)
    ap.add_argument("--sentences", required=True)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    env = dict(os.environ, GRAFT_THREADS=str(args.threads), OPENBLAS_NUM_THREADS="1")
    tmp = tempfile.mkdtemp()
    script = os.path.join(tmp, "torch_side.py")
    with open(script, "w") as f:
        f.write(TORCH_SIDE)
    rows = []
    for b in args.batch_sizes:
        graft_out, torch_out = os.path.join(tmp, f"g{b}.txt"), os.path.join(tmp, f"t{b}.txt")
        sides = [("graft", [args.graft, "embed", "--model", args.model, "--batch-size", str(b), "--quiet", args.sentences])]
        if args.graft_before:
            sides.append(("graft-before", [args.graft_before, "embed", "--model", args.model, "--batch-size", str(b), "--quiet",
                                           args.sentences]))
        sides.append(("transformers", [sys.executable, script, args.model, args.sentences, str(b), torch_out, str(args.threads)]))
        row = {"batch": b}
        for name, cmd in sides:
            if name == "graft":
                with open(graft_out, "w") as out:
                    t0 = time.time()
                    p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
                    _, status, usage = os.wait4(p.pid, 0)
                    if os.waitstatus_to_exitcode(status) != 0:
                        sys.exit(p.stderr.read().decode())
                    row["graft_s"], row["graft_mb"] = time.time() - t0, usage.ru_maxrss / 1024
            else:
                s, mb = run(cmd, env)
                key = name.replace("-", "_")
                row[f"{key}_s"], row[f"{key}_mb"] = s, mb
        g, t = vectors(graft_out), vectors(torch_out)
        row["max_abs_diff"] = max(abs(a - c) for u, v in zip(g, t) for a, c in zip(u, v))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"{'batch':>5} {'graft MB':>9} " + (f"{'before MB':>10} " if args.graft_before else "")
          + f"{'transformers MB':>16} {'ratio':>6} {'max |diff|':>11}")
    for r in rows:
        print(f"{r['batch']:>5} {r['graft_mb']:>9.0f} " + (f"{r['graft_before_mb']:>10.0f} " if args.graft_before else "")
              + f"{r['transformers_mb']:>16.0f} {r['graft_mb'] / r['transformers_mb']:>6.2f} {r['max_abs_diff']:>11.2e}")


if __name__ == "__main__":
    main()
