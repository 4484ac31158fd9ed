#!/usr/bin/env python3
"""Domain adaptation news -> social media, measured: CoNLL-2003 (labelled source) -> WNUT-16.

Every row fine-tunes all-MiniLM-L6-v2 (imported with `graft import`) as a CoNLL-type NER tagger
and reports entity F1 on WNUT-16 dev (seqeval strict IOB2, WNUT's ten types mapped to CoNLL's four
by tasks/wnut16-to-conll2003.toml), with the training wall time:

  source only          tasks/ner-conll-to-wnut.toml                       (CoNLL train)
  continued pretraining graft pretrain --from MINILM on the WNUT train text (masked LM, 300 updates of
                       32 x 64 tokens, lr 1e-4), then the source-only run from its best/
  adversarial          tasks/ner-conll-to-wnut.toml --adapt adversarial   (DANN, WNUT train text)
  instance weighting   tasks/ner-conll-to-wnut.toml --adapt weighting
  multi-source         tasks/ner-conll-wnut-multisource.toml              (CoNLL + WNUT train, mapped, rates 0.7/0.3)
  target only          tasks/ner-wnut16-mapped.toml                       (WNUT train alone, mapped)

The F1 is the best epoch's (each run keeps the epoch with the best WNUT dev F1, the same rule for
every row). Writes a markdown table (--table) and one JSON object per row (--jsonl).

    python3 benchmarks/domain_adaptation.py --threads 2          # the full table
    # (about 75 minutes on 2 idle cores, measured 2026-12-01: source only ~400 s, continued
    #  pretraining ~10 min + a source-only run, adversarial 1,760 s (source and target batches
    #  through the encoder each step), weighting 441 s, multi-source 525 s, target only 220 s)
    python3 benchmarks/domain_adaptation.py --limit-train 40 --epochs 1 --work /tmp/da   # a quick check
"""
import argparse
import json
import os
import subprocess
import sys
import time

from learning_curve import pretrain_command  # benchmarks/ is sys.path[0] when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, log):
    """Runs cmd, its stderr to log; returns (stdout, seconds)."""
    started = time.time()
    with open(log, "a") as err:
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    seconds = time.time() - started
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}; see {log}")
    return p.stdout, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", default=os.path.join(ROOT, ".build/release/graft"))
    ap.add_argument("--data-dir", default=os.environ.get("GRAFT_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared/data")))
    ap.add_argument("--model", help="an imported MiniLM model directory (default: imported into WORK/minilm)")
    ap.add_argument("--work", default=os.path.join(ROOT, "benchmarks/results/domain-adaptation"))
    ap.add_argument("--epochs", type=int, help="override every spec's train.epochs")
    ap.add_argument("--limit-train", type=int, help="the first N examples of each training source (a quick check)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--adapt-weight", type=float, help="λ_max of the adversarial row (default: graft's, 0.1)")
    ap.add_argument("--dapt-steps", type=int, default=300, help="continued-pretraining updates on the WNUT text (default 300)")
    ap.add_argument("--dapt-lr", type=float, default=1e-4, help="its peak learning rate (default 1e-4)")
    ap.add_argument("--dapt-seq-len", type=int, default=64, help="its packed block length (default 64: tweets are short)")
    ap.add_argument("--rows", default="source,pretrain,adversarial,weighting,multisource,target",
                    help="comma-separated subset of: source, pretrain, adversarial, weighting, multisource, target")
    ap.add_argument("--table", help="markdown output (default: WORK/table.md)")
    ap.add_argument("--jsonl", help="JSON Lines output (default: WORK/results.jsonl)")
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    env_data = os.path.abspath(a.data_dir)
    os.environ["GRAFT_DATA_DIR"] = env_data
    log = os.path.join(a.work, "log.txt")
    table = a.table or os.path.join(a.work, "table.md")
    jsonl = a.jsonl or os.path.join(a.work, "results.jsonl")
    db = os.path.join(a.work, "runs.sqlite")
    wanted = a.rows.split(",")

    model = a.model
    if model is None:
        model = os.path.join(a.work, "minilm")
        if not os.path.exists(os.path.join(model, "config.json")):
            run([a.graft, "import", os.path.join(env_data, "models/all-MiniLM-L6-v2"), "--out", model], log)

    common = ["--db", db, "--json"]
    if a.epochs:
        common += ["--epochs", str(a.epochs)]
    if a.limit_train:
        common += ["--limit-train", str(a.limit_train)]
    if a.threads:
        common += ["--threads", str(a.threads)]

    def finetune(name, spec, extra=(), base=None):
        out = os.path.join(a.work, name)
        if os.path.exists(out):
            subprocess.run(["rm", "-rf", out], check=True)
        cmd = [a.graft, "finetune", "--task", os.path.join(ROOT, "tasks", spec), "--model", base or model, "--out", out] + list(extra) + common
        stdout, seconds = run(cmd, log)
        summary = json.loads(stdout.strip().splitlines()[-1])
        return {"f1": summary.get("f1"), "precision": summary.get("precision"), "recall": summary.get("recall"),
                "epochs": summary.get("epochs"), "steps": summary.get("steps"),
                "train_seconds": summary.get("train_seconds"), "wall_seconds": round(seconds, 1), "command": " ".join(cmd)}

    def continued_pretraining():
        """Masked-LM pretraining of the model continued on WNUT-16's training text (its tags ignored),
        then the source-only run from the adapted encoder (task-adaptive pretraining, Gururangan et al. 2020)."""
        text_db = os.path.join(a.work, "wnut-text.sqlite")
        out = os.path.join(a.work, "dapt-minilm")
        for p in (text_db, out):
            subprocess.run(["rm", "-rf", p], check=True)
        run([a.graft, "corpus", "add", os.path.join(env_data, "ner/wnut16/train.txt"), "--format", "conll",
             "--db", text_db, "--quiet"], log)
        cmd = pretrain_command(a.graft, text_db, out, a.dapt_steps, a.dapt_lr,
                               ["--threads", str(a.threads)] if a.threads else [], from_model=model, seq_len=a.dapt_seq_len)
        _, pretrain_seconds = run(cmd, log)
        row = finetune("dapt-source-only", "ner-conll-to-wnut.toml", base=os.path.join(out, "best"))
        row.update(pretrain_seconds=round(pretrain_seconds, 1), pretrain_command=" ".join(cmd),
                   wall_seconds=round(row["wall_seconds"] + pretrain_seconds, 1))
        return row

    rows = []
    weight = ["--adapt-weight", str(a.adapt_weight)] if a.adapt_weight is not None else []
    plan = [
        ("source", "source only (CoNLL-2003)", lambda: finetune("source-only", "ner-conll-to-wnut.toml")),
        ("pretrain", "continued pretraining on WNUT text, then source only", continued_pretraining),
        ("adversarial", "domain-adversarial (DANN)", lambda: finetune("adversarial", "ner-conll-to-wnut.toml", ["--adapt", "adversarial"] + weight)),
        ("weighting", "instance weighting", lambda: finetune("weighting", "ner-conll-to-wnut.toml", ["--adapt", "weighting"])),
        ("multisource", "multi-source (CoNLL + WNUT, 0.7 / 0.3)", lambda: finetune("multi-source", "ner-conll-wnut-multisource.toml")),
        ("target", "target only (WNUT-16 train, mapped)", lambda: finetune("target-only", "ner-wnut16-mapped.toml")),
    ]
    for key, label, body in plan:
        if key not in wanted:
            continue
        done = os.path.join(a.work, f"row-{key}.json")      # a finished row is reused by a rerun
        if os.path.exists(done):
            with open(done) as f:
                rows.append(json.load(f))
            print(f"{label}: reusing {done}", file=sys.stderr)
            continue
        print(f"{label} ...", file=sys.stderr)
        row = {"row": label}
        row.update(body())
        with open(done + ".tmp", "w") as f:
            json.dump(row, f)
        os.replace(done + ".tmp", done)
        rows.append(row)
        print(f"{label}: F1 {row['f1']:.4f} in {row['wall_seconds']} s", file=sys.stderr)

    with open(jsonl, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    source_f1 = next((r["f1"] for r in rows if r["row"].startswith("source only") and "f1" in r), None)
    lines = ["| setting | WNUT-16 dev F1 (mapped) | Δ vs source only | precision | recall | epochs | training time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        delta = "" if source_f1 is None or r["row"].startswith("source only") else f"{100 * (r['f1'] - source_f1):+.1f}"
        lines.append(f"| {r['row']} | {r['f1']:.4f} | {delta} | {r['precision']:.4f} | {r['recall']:.4f} | {r['epochs']} | {r['wall_seconds']:.0f} s |")
    notes = [f"", f"From {os.path.basename(model)} (all-MiniLM-L6-v2); F1 of the best epoch on WNUT-16 dev (239 tweets, 122 entities),"
             f" seqeval strict IOB2 after tasks/wnut16-to-conll2003.toml; Δ in F1 points."]
    if a.limit_train or a.epochs:
        notes.append(f"Subset run: --limit-train {a.limit_train} --epochs {a.epochs} (a check of the command, not the benchmark).")
    with open(table, "w") as f:
        f.write("\n".join(lines + notes) + "\n")
    print("\n".join(lines + notes))


if __name__ == "__main__":
    main()
