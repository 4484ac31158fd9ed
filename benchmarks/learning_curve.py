#!/usr/bin/env python3
"""Transfer learning curve: what pretraining buys on rt-snippets sentiment.

One command builds the whole table: the same sequence-classification head fine-tuned on
100, 1,000 and all training examples of rt-snippets, from

  (a) random initialisation: BERT-Mini's architecture and tokenizer, no pretrained weights
      (`graft finetune --init random`),
  (b) a BERT-Mini that Graft pretrains here on the shared Wikipedia + news corpora
      (`graft corpus add` -> `graft tokenizer train` -> `graft pretrain --preset mini`),
  (c) the imported all-MiniLM-L6-v2 (`graft import`).

Every run is scored on the full rt-snippets dev set (accuracy; macro-F1 beside it). Dev is
used only for reporting here: every run keeps its best epoch's model by dev accuracy, as
`graft finetune` does, the same rule for every cell. Small training sets get more epochs so that each
run makes a reasonable number of updates (100 -> 10 epochs, 1,000 -> 5, all -> 3); the learning
rate and everything else come from tasks/sentiment-rt.toml for every cell.

    python3 benchmarks/learning_curve.py --graft .build/release/graft \
        --data ../shared/data --work /tmp/lc --threads 2 \
        --json benchmarks/results/learning-curve.jsonl --markdown benchmarks/results/learning-curve.md

`--pretrain-steps` sets the pretraining budget (updates of 32 x 128 tokens); a pretrained
BERT-Mini from an earlier run is reused when WORK/bert-mini/best exists (delete it to
pretrain again). Prints progress on stderr and the table (Markdown) on stdout.
"""
import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = (100, 1000, None)           # None = all
EPOCHS = {100: 10, 1000: 5, None: 3}


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def run(cmd, env=None, capture=False, stderr_file=None):
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    t = time.time()
    if stderr_file:
        with open(stderr_file, "w") as err:
            r = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE if capture else None, stderr=err)
    else:
        r = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE if capture else None)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}")
    return (r.stdout if capture else None), time.time() - t


def pretrain_command(graft, db, out, steps, lr, threads=(), tokenizer=None, kind=None, preset=None,
                     from_model=None, seq_len=None):
    """The `graft pretrain` command line these benchmarks use: warm-up over the first tenth of the
    updates, five dev evaluations and checkpoints; from scratch (tokenizer, kind, preset) or
    continued from a model directory (`--from`)."""
    cmd = [graft, "pretrain", "--db", db]
    if from_model:
        cmd += ["--from", from_model]
    if tokenizer:
        cmd += ["--tokenizer", tokenizer]
    if kind:
        cmd += ["--kind", kind]
    if preset:
        cmd += ["--preset", preset]
    cmd += ["--out", out, "--steps", str(steps), "--warmup-steps", str(max(1, steps // 10)), "--lr", str(lr)]
    if seq_len:
        cmd += ["--seq-len", str(seq_len)]
    return cmd + ["--eval-every", str(max(1, steps // 5)), "--checkpoint-every", str(max(1, steps // 5))] + list(threads)


def bert_mini_commands(graft, data, work, steps, lr, threads=()):
    """The three commands that build this table's BERT-Mini in WORK: the shared Wikipedia + news
    corpora into WORK/corpus.sqlite, an 8k WordPiece vocabulary in WORK/wp8k, MLM pretraining into
    WORK/bert-mini. Returned as (corpus add, tokenizer train, pretrain) for the caller to run."""
    db = os.path.join(work, "corpus.sqlite")
    add = [graft, "corpus", "add", os.path.join(data, "corpora", "wiki-vital-en.jsonl"),
           os.path.join(data, "corpora", "news-2017-en.jsonl"), "--format", "jsonl", "--db", db]
    tok = [graft, "tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "8192", "--db", db,
           "--out", os.path.join(work, "wp8k")]
    pre = pretrain_command(graft, db, os.path.join(work, "bert-mini"), steps, lr, threads,
                           tokenizer=os.path.join(work, "wp8k"), kind="bert", preset="mini")
    return add, tok, pre


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", default=os.path.join(ROOT, ".build/release/graft"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--work", default="/tmp/graft-learning-curve")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--sizes", default="100,1000,all", help="comma-separated: numbers and/or 'all'")
    ap.add_argument("--inits", default="random,bert-mini,minilm")
    ap.add_argument("--json", help="append one JSON object per run to this file")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()

    graft = os.path.abspath(args.graft)
    data = os.path.abspath(args.data)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, GRAFT_DATA_DIR=data)
    spec = os.path.join(ROOT, "tasks", "sentiment-rt.toml")
    db = os.path.join(work, "corpus.sqlite")
    threads = ["--threads", str(args.threads)]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()

    # (b) BERT-Mini pretrained on the shared Wikipedia + news corpora.
    mini = os.path.join(work, "bert-mini")
    pretrain_seconds = None
    pretrain_summary = None
    inits = args.inits.split(",")
    if "random" in inits or "bert-mini" in inits:
        if not os.path.exists(os.path.join(mini, "best", "config.json")):
            if os.path.exists(db):
                os.remove(db)
            add, tok, pre = bert_mini_commands(graft, data, work, args.pretrain_steps, args.pretrain_lr, threads)
            run(add, env)
            run(tok, env)
            _, pretrain_seconds = run(pre, env, stderr_file=os.path.join(work, "pretrain.log"))
            os.replace(os.path.join(work, "pretrain.log"), os.path.join(mini, "pretrain.log"))
        pretrain_summary = summarize_pretraining(mini)

    # (c) MiniLM imported into a Graft model directory.
    minilm = os.path.join(work, "minilm")
    if "minilm" in inits and not os.path.exists(os.path.join(minilm, "config.json")):
        run([graft, "import", os.path.join(data, "models", "all-MiniLM-L6-v2"), "--out", minilm], env)

    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    models = {"random": (os.path.join(mini, "best"), ["--init", "random"]),
              "bert-mini": (os.path.join(mini, "best"), []),
              "minilm": (minilm, [])}
    results = []
    for size in sizes:
        for init in inits:
            base, extra = models[init]
            out = os.path.join(work, f"ft-{init}-{size or 'all'}")
            cmd = [graft, "finetune", "--task", spec, "--model", base, "--out", out,
                   "--db", os.path.join(work, "runs.sqlite"), "--epochs", str(EPOCHS.get(size, 3)), "--json"] + extra + threads
            if size is not None:
                cmd += ["--limit-train", str(size)]
            subprocess.run(["rm", "-rf", out])
            stdout, seconds = run(cmd, env, capture=True)
            obj = json.loads(stdout.strip().splitlines()[-1])
            rec = {"init": init, "train_examples": size or "all", "epochs": EPOCHS.get(size, 3),
                   "accuracy": obj.get("accuracy"), "macro_f1": obj.get("macro_f1"), "steps": obj.get("steps"),
                   "train_seconds": obj.get("train_seconds"), "wall_seconds": round(seconds, 1),
                   "command": " ".join(shlex.quote(c) for c in cmd)}
            log(f"{init} @ {size or 'all'}: accuracy {rec['accuracy']:.4f}, macro-F1 {rec['macro_f1']:.4f}, {seconds:.0f} s")
            results.append(rec)

    meta = {"started_utc": started, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "threads": args.threads, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "pretrain_steps": args.pretrain_steps, "pretrain_seconds": pretrain_seconds, "pretraining": pretrain_summary,
            "command": " ".join(shlex.quote(a) for a in sys.argv)}
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps(dict(r, **meta)) + "\n")
    table = markdown(results, sizes, inits, meta)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


def summarize_pretraining(mini):
    """The dev evaluations of the pretraining run in `mini` (its pretrain.log), or None without a log."""
    path = os.path.join(mini, "pretrain.log")
    return dev_evals(path) if os.path.exists(path) else None


def dev_evals(path):
    """The dev evaluations ("step N: dev MLM loss L, accuracy A") of a `graft pretrain` log."""
    evals = []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"step (\d+): dev MLM loss ([0-9.]+), accuracy ([0-9.]+)", line)
            if m:
                evals.append({"step": int(m.group(1)), "dev_mlm_loss": float(m.group(2)), "dev_mlm_accuracy": float(m.group(3))})
    return evals


def markdown(results, sizes, inits, meta):
    names = {"random": "(a) random init (BERT-Mini architecture)",
             "bert-mini": f"(b) BERT-Mini pretrained by Graft ({meta['pretrain_steps']} updates)",
             "minilm": "(c) all-MiniLM-L6-v2 (imported)"}
    cols = [str(s) if s else "all (8,454)" for s in sizes]
    lines = ["| start | " + " | ".join(f"{c} examples" for c in cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for init in inits:
        cells = []
        for s in sizes:
            r = next((r for r in results if r["init"] == init and r["train_examples"] == (s or "all")), None)
            cells.append("—" if r is None else f"{100 * r['accuracy']:.1f} ({r['wall_seconds']:.0f} s)")
        lines.append(f"| {names[init]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("rt-snippets dev accuracy in % (1,057 examples), wall time of the fine-tuning command in "
                 f"parentheses; {meta['threads']} threads, load {meta['loadavg_before'][0]:.1f} before / "
                 f"{meta['loadavg_after'][0]:.1f} after.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
