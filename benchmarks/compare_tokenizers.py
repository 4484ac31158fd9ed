#!/usr/bin/env python3
"""Graft's tokenizers against HuggingFace tokenizers on the same machine, in one run.

    pip install tokenizers==0.23.3
    swift build -c release
    python3 benchmarks/compare_tokenizers.py [--rounds 3] [--data ../shared/data]

Alternates the two sides for --rounds rounds (so a busy second core hurts both alike) and prints
medians: encode throughput in MB/s over the Wikipedia corpus (single-threaded loop of
encode(text), and a batch on 2 threads), and training time (texts already in memory) for 8k and
30k vocabularies on Wikipedia + news + Shakespeare, on 1 and 2 threads. Graft's side is
`graft bench tokenizers --json`; HF's side runs in subprocesses because rayon fixes its thread
count (RAYON_NUM_THREADS) at first use.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_texts(paths):
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            if path.endswith(".jsonl"):
                texts += [json.loads(line)["text"] for line in f if line.strip()]
            else:
                texts += [line.rstrip("\n") for line in f if line.strip()]
    return texts


def hf_child(args):
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
    out = {}
    if args.child == "encode":
        texts = load_texts([args.encode_corpus])
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        toks = {
            "wordpiece": BertWordPieceTokenizer(os.path.join(ROOT, "vocab/bert-base-uncased/vocab.txt"), lowercase=True),
            "bpe": ByteLevelBPETokenizer(os.path.join(ROOT, "vocab/gpt2/encoder.json"), os.path.join(ROOT, "vocab/gpt2/vocab.bpe")),
        }
        threads = os.environ["RAYON_NUM_THREADS"]
        for name, tok in toks.items():
            if threads == "1":
                start = time.perf_counter()
                n = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
                out[f"{name}_mb_per_s_1thread"] = mb / (time.perf_counter() - start)
                out[f"{name}_tokens"] = n
            else:
                start = time.perf_counter()
                tok.encode_batch(texts, add_special_tokens=False)
                out[f"{name}_mb_per_s_{threads}threads"] = mb / (time.perf_counter() - start)
    else:
        texts = load_texts(args.train_corpus)
        kind, vocab = args.child.split(":")
        tok = BertWordPieceTokenizer(lowercase=True) if kind == "wordpiece" else ByteLevelBPETokenizer()
        start = time.perf_counter()
        if kind == "wordpiece":
            tok.train_from_iterator(texts, vocab_size=int(vocab), show_progress=False)
        else:
            tok.train_from_iterator(texts, vocab_size=int(vocab), show_progress=False, special_tokens=["<|endoftext|>"])
        out[f"train_{kind}_{vocab}_{os.environ['RAYON_NUM_THREADS']}thread_s"] = time.perf_counter() - start
    print(json.dumps(out))


def run_hf(args, child, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    cmd = [sys.executable, __file__, "--child", child, "--data", args.data]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--graft", default=os.path.join(ROOT, ".build", "release", "graft"))
    ap.add_argument("--child")
    args = ap.parse_args()
    corpora = os.path.join(args.data, "corpora")
    args.encode_corpus = os.path.join(corpora, "wiki-vital-en.jsonl")
    args.train_corpus = [os.path.join(corpora, f) for f in ("wiki-vital-en.jsonl", "news-2017-en.jsonl", "shakespeare-gutenberg.txt")]
    if args.child:
        hf_child(args)
        return
    graft, hf = {}, {}
    for r in range(args.rounds):
        out = subprocess.run([args.graft, "bench", "tokenizers", "--json", "--repeats", "1", "--corpus", args.encode_corpus,
                              "--vocab", os.path.join(ROOT, "vocab"), "--train-corpus", *args.train_corpus],
                             check=True, capture_output=True, text=True).stdout
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            graft.setdefault(k, []).append(v)
        results = [run_hf(args, "encode", 1), run_hf(args, "encode", 2)]
        for kind in ("wordpiece", "bpe"):
            for vocab in (8000, 30000):
                for threads in (1, 2):
                    results.append(run_hf(args, f"{kind}:{vocab}", threads))
        for res in results:
            for k, v in res.items():
                hf.setdefault(k, []).append(v)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    keys = [k for k in graft if k in hf]
    print(f"{'figure':38s} {'graft':>10s} {'HF 0.23.3':>10s} {'graft/HF':>9s}")
    for k in keys:
        g, h = statistics.median(graft[k]), statistics.median(hf[k])
        ratio = g / h if "mb_per_s" in k else h / g  # >1 means Graft is faster
        print(f"{k:38s} {g:10.2f} {h:10.2f} {ratio:8.2f}x")
    print(json.dumps({"graft": {k: statistics.median(v) for k, v in graft.items()},
                      "hf": {k: statistics.median(v) for k, v in hf.items()}}))


if __name__ == "__main__":
    main()
