#!/usr/bin/env python3
"""Inference throughput: `graft classify` / `graft tag` beside transformers' pipelines.

The same fine-tuned weights on both sides: the Graft model directory is exported with
`graft export` and loaded by `transformers.pipeline(...)`. Inputs are real dev sets, one
document per line:

  * classify: rt-snippets dev (1,057 texts),
  * tag: CoNLL-2003 dev sentences (3,250), tokens joined by single spaces.

Each round runs every side once in a fresh process, alternating (HF, Graft, HF, Graft, ...),
so both see the same machine load; reported are median wall time (whole command, model
loading included, and the inference loop alone for HF), documents/s, tokens/s (tokens =
the model tokenizer's pieces per document without specials, the same count for both
sides) and peak RSS (wait4). Both sides use --threads threads (torch.set_num_threads,
OMP_NUM_THREADS; `graft --threads`) and batch size 32.

    python3 benchmarks/hf_pipeline_bench.py --graft .build/release/graft \\
        --classifier RUN-SENTIMENT/best --tagger RUN-NER/best --data ../shared/data \\
        --threads 2 --rounds 3 --json benchmarks/results/inference-side-by-side.jsonl

HF pipeline settings: text-classification with `top_k=None` (all class scores, as
`graft classify` prints), token-classification with `aggregation_strategy="first"` (entity
spans from the first sub-token's label, as `graft tag` decodes), batch_size=32, truncation
to the model's max length 512 (dev texts are shorter).
"""
import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = os.path.abspath(__file__)


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def read_rt(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            line = line.rstrip("\n")
            if line:
                texts.append(line.split("\t", 1)[1])
    return texts


def read_conll(path):
    docs, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    docs.append(" ".join(cur))
                    cur = []
                continue
            tok = line.split()[0]
            if tok == "-DOCSTART-":
                continue
            cur.append(tok)
    if cur:
        docs.append(" ".join(cur))
    return docs


def child(args):
    """One HF pipeline run in this (fresh) process; prints a JSON object."""
    import torch
    torch.set_num_threads(args.threads)
    from transformers import pipeline
    t0 = time.time()
    with open(args.input, encoding="utf-8") as f:
        docs = [l.rstrip("\n") for l in f]
    if args.mode == "classify":
        pipe = pipeline("text-classification", model=args.hf_model, device="cpu", top_k=None)
    else:
        pipe = pipeline("token-classification", model=args.hf_model, device="cpu", aggregation_strategy="first")
    load = time.time() - t0
    t = time.time()
    kwargs = {"batch_size": 32, "truncation": True} if args.mode == "classify" else {"batch_size": 32}
    out = pipe(docs, **kwargs)
    infer = time.time() - t
    n_out = sum(len(o) for o in out) if args.mode == "tag" else len(out)
    print(json.dumps({"load_seconds": load, "inference_seconds": infer, "outputs": n_out,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def measure_rss(cmd, env):
    """Runs cmd, returns (wall seconds, peak RSS MB of that process, stdout)."""
    t = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = bytearray()
    err = bytearray()
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, out)
    sel.register(p.stderr, selectors.EVENT_READ, err)
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            chunk = os.read(key.fileobj.fileno(), 1 << 16)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
            else:
                key.data.extend(chunk)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.time() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, out.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", help="the graft executable (required except in the child)")
    ap.add_argument("--classifier", help="graft sequence-classification model directory (rt-snippets)")
    ap.add_argument("--tagger", help="graft token-classification model directory (CoNLL-2003)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "..", "shared", "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="append the result object to this file")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["classify", "tag"])
    ap.add_argument("--hf-model")
    ap.add_argument("--input")
    args = ap.parse_args()
    if args._child:
        return child(args)

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               GRAFT_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    work = tempfile.mkdtemp(prefix="graft-pipe-")
    jobs = []
    if args.classifier:
        docs = read_rt(os.path.join(args.data, "sentiment", "rt-snippets", "dev.tsv"))
        jobs.append(("classify", args.classifier, docs))
    if args.tagger:
        docs = read_conll(os.path.join(args.data, "ner", "conll2003", "dev.txt"))
        jobs.append(("tag", args.tagger, docs))
    from tokenizers import Tokenizer
    results = []
    for mode, model, docs in jobs:
        hf = os.path.join(work, mode + "-hf")
        subprocess.run([args.graft, "export", "--model", model, "--out", hf], check=True, stdout=subprocess.DEVNULL)
        inp = os.path.join(work, mode + ".txt")
        with open(inp, "w", encoding="utf-8") as f:
            f.write("\n".join(docs) + "\n")
        tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        tokens = sum(len(e.ids) - 2 for e in tok.encode_batch(docs))
        hf_cmd = [sys.executable, HERE, "--_child", "--mode", mode, "--hf-model", hf, "--input", inp,
                  "--threads", str(args.threads)]
        g_cmd = [args.graft, mode, "--model", model, "--threads", str(args.threads), "--batch-size", "32", inp]
        runs = {"hf": [], "graft": []}
        load_before = os.getloadavg()
        for r in range(args.rounds):
            wall, rss, out = measure_rss(hf_cmd, env)
            obj = json.loads(out.strip().splitlines()[-1])
            runs["hf"].append({"wall_seconds": wall, "peak_rss_mb": rss, **obj})
            log(f"{mode} round {r + 1}: transformers {wall:.1f} s wall ({obj['inference_seconds']:.1f} s inference), {rss:.0f} MB")
            wall, rss, out = measure_rss(g_cmd, env)
            lines = out.count("\n")
            runs["graft"].append({"wall_seconds": wall, "peak_rss_mb": rss, "outputs": lines})
            log(f"{mode} round {r + 1}: graft {wall:.1f} s wall, {rss:.0f} MB, {lines} lines")
        med = lambda side, k: statistics.median(x[k] for x in runs[side])
        rec = {"mode": mode, "documents": len(docs), "tokens": tokens, "threads": args.threads, "rounds": args.rounds,
               "hf_wall_seconds": med("hf", "wall_seconds"), "hf_inference_seconds": med("hf", "inference_seconds"),
               "hf_peak_rss_mb": med("hf", "peak_rss_mb"),
               "graft_wall_seconds": med("graft", "wall_seconds"), "graft_peak_rss_mb": med("graft", "peak_rss_mb"),
               "runs": runs, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
               "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "graft_command": " ".join(shlex.quote(c) for c in g_cmd), "command": " ".join(shlex.quote(a) for a in sys.argv),
               "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for side, key in (("hf", "hf_wall_seconds"), ("graft", "graft_wall_seconds")):
            rec[f"{side}_docs_per_s"] = round(len(docs) / rec[key], 1)
            rec[f"{side}_tokens_per_s"] = round(tokens / rec[key], 1)
        rec["hf_inference_docs_per_s"] = round(len(docs) / rec["hf_inference_seconds"], 1)
        rec["graft_speedup_wall"] = round(rec["hf_wall_seconds"] / rec["graft_wall_seconds"], 3)
        results.append(rec)
        print(f"{mode}: {len(docs)} documents, {tokens} tokens; transformers {rec['hf_wall_seconds']:.1f} s wall "
              f"({rec['hf_docs_per_s']} docs/s; inference loop alone {rec['hf_inference_seconds']:.1f} s), "
              f"{rec['hf_peak_rss_mb']:.0f} MB; graft {rec['graft_wall_seconds']:.1f} s wall ({rec['graft_docs_per_s']} docs/s, "
              f"{rec['graft_tokens_per_s']} tokens/s), {rec['graft_peak_rss_mb']:.0f} MB; graft {rec['graft_speedup_wall']}x")
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    sys.exit(main())
