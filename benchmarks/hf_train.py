#!/usr/bin/env python3
"""Time HuggingFace `tokenizers` training, the figures Graft's trainers are compared with.

Usage:
    pip install tokenizers==0.23.3
    python3 benchmarks/hf_train.py [--corpus FILE ...] [--vocab 8000 30000] [--threads 1 2] [--repeat 3]

Each (kind, vocab size, thread count) is timed in a fresh subprocess, because rayon's
thread pool size (RAYON_NUM_THREADS) is fixed when the library first uses it. The time is
wall-clock (and process CPU time) for `train_from_iterator` over already-loaded texts (normalization,
pre-tokenization, word counting and merges: everything HF does when training). Default corpus:
../shared/data/corpora/wiki-vital-en.jsonl (`text` field of each JSON line; a `.txt` file
gives one text per line). Prints one line per run and a summary (min over repeats).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CORPUS = os.path.join(HERE, "..", "..", "shared", "data", "corpora", "wiki-vital-en.jsonl")


def load_texts(paths):
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            if path.endswith(".jsonl"):
                for line in f:
                    if line.strip():
                        texts.append(json.loads(line)["text"])
            else:
                texts.extend(line.rstrip("\n") for line in f)
    return texts


def child(kind, vocab, corpus):
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
    import tokenizers

    texts = load_texts(corpus)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    if kind == "wordpiece":
        tok = BertWordPieceTokenizer(lowercase=True)
    else:
        tok = ByteLevelBPETokenizer(add_prefix_space=False)
    start, cpu_start = time.perf_counter(), time.process_time()
    tok.train_from_iterator(texts, vocab_size=vocab, show_progress=False)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"kind": kind, "vocab": vocab, "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3),
                      "vocab_size": tok.get_vocab_size(), "corpus_bytes": nbytes,
                      "threads": os.environ.get("RAYON_NUM_THREADS"),
                      "tokenizers": tokenizers.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="+", default=[DEFAULT_CORPUS])
    ap.add_argument("--vocab", nargs="+", type=int, default=[8000, 30000])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--kinds", nargs="+", default=["wordpiece", "bpe"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.corpus)
        return
    best = {}
    for kind in args.kinds:
        for vocab in args.vocab:
            for threads in args.threads:
                for _ in range(args.repeat):
                    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
                    out = subprocess.run([sys.executable, __file__, "--child", kind, str(vocab), "--corpus", *args.corpus],
                                         env=env, check=True, capture_output=True, text=True).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    print(json.dumps(result), flush=True)
                    key = (kind, vocab, threads)
                    wall, cpu = best.get(key, (float("inf"), float("inf")))
                    best[key] = (min(wall, result["seconds"]), min(cpu, result["cpu_seconds"]))
    print("summary (min over repeats; wall-clock, and CPU time of all threads):")
    for (kind, vocab, threads), (wall, cpu) in best.items():
        print(f"  {kind:9s} vocab {vocab:6d} threads {threads}: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
