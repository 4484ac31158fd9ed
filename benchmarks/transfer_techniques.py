#!/usr/bin/env python3
"""Transfer techniques beyond plain fine-tuning, side by side (the issue of that name).

One table: on rt-snippets sentiment (dev accuracy) and CoNLL-2003 NER (dev entity F1, seqeval
strict IOB2), plain fine-tuning of the imported all-MiniLM-L6-v2 against each technique Graft
has, every row an existing graft command:

  key            task       what runs
  rt-plain       sentiment  graft finetune --task tasks/sentiment-rt.toml --model MINILM --baseline
                            scratch: the row is the run's transfer half (OUT/best; the same command,
                            seed and data as without --baseline, which only adds the second half)
  rt-scratch     sentiment  the scratch half of that run (OUT/scratch, random initialisation)
  rt-features    sentiment  --freeze-encoder --cache-features (feature extraction)
  rt-features-mean sentiment the same with --pooling mean (MiniLM's [CLS] pooler was never trained:
                            sentence-transformers mean-pools it)
  rt-probe       sentiment  the same with --head-lr 1e-3 and 10 epochs (a linear probe's usual
                            recipe; after the first epoch only the head runs)
  rt-top2        sentiment  --unfreeze-top 2
  rt-gradual     sentiment  --gradual-unfreeze (ULMFiT: head only in epoch 1, +1 layer per epoch)
  rt-lld         sentiment  --layer-lr-decay 0.8
  rt-surgery     sentiment  graft surgery --model MINILM --every 2 (layers 0, 2, 4), then fine-tune
  rt-layer3      sentiment  --from-layer 3 (head on layer 3's output, layers above cut off)
  rt-distill     sentiment  graft distill --teacher RT-PLAIN/best --student bert-mini (BERT-Mini
                            sized, built with MiniLM's vocabulary; T 2, alpha 0.5); the notes give
                            its accuracy as a share of the teacher's and its speed as a multiple
  rt-zero-shot   sentiment  graft evaluate --zero-shot --labels ... (no training; the labels of
                            benchmarks/zero_few_shot.sh)
  rt-few-shot    sentiment  graft evaluate --examples SHOTS --labels "pos;neg" (the first 16
                            training examples of each class, no training)
  multitask      both       graft finetune --task tasks/sentiment-rt.toml --task
                            tasks/ner-conll2003.toml (one encoder, two heads; hyper-parameters of
                            the first spec); each head scored with graft evaluate --head NAME;
                            gives one sentiment row and one NER row (same training run and time)
  rt-mini        sentiment  a BERT-Mini pretrained by Graft (built as benchmarks/learning_curve.py
                            builds it: Wikipedia + news corpora, 8,192-piece WordPiece,
                            --preset mini, --pretrain-steps updates) fine-tuned on rt-snippets
  rt-mini-dapt   sentiment  the same BERT-Mini after graft pretrain --from it on the news corpus
                            (domain-adaptive / continued MLM, --dapt-steps updates at --dapt-lr),
                            fine-tuned. News is also part of the BERT-Mini's own pretraining
                            corpus and not the reviews' domain: the row measures what more MLM
                            on it buys, not adaptation to movie reviews
  ner-plain      NER        graft finetune --task tasks/ner-conll2003.toml --model MINILM
  ner-features   NER        --freeze-encoder --cache-features
  ner-gradual    NER        --gradual-unfreeze
  ner-surgery    NER        the 3-layer MiniLM of rt-surgery, fine-tuned

Each row reports the dev score (the run's best epoch, from `--json`, as graft finetune keeps
it; evaluate's score for the multi-task heads and zero/few-shot), the training time (the run's
own `train_seconds`), the model size (parameters counted from model.safetensors' header, and
the file's size in MB = 10^6 bytes) and the inference speed: documents/s of `graft classify`
over the rt-snippets dev texts, or `graft tag` over the CoNLL-2003 dev sentences (tokens joined
by spaces, one per line, as benchmarks/hf_pipeline_bench.py does), whole command timed by this
script (model loading included; median of --speed-repeat runs).

Everything goes under --work: WORK/runs/KEY/ holds a row's graft output directory (run/), its
stderr logs, train.json (the training command's summary) and result.json (the row). A row whose
result.json exists is not run again (nor is a training whose train.json exists), so the table
can be built over several sessions; delete the row's directory to redo it. A row that fails is
recorded with its error (and the tail of graft's stderr) and the others go on; rerunning the
script retries only the failed ones; --report-only runs nothing and prints the table of what
is finished. MiniLM is imported into WORK/minilm, the 3-layer cut is WORK/minilm-3, the
BERT-Mini lives in --mini-work (learning_curve.py's layout: corpus.sqlite, wp8k/, bert-mini/;
`--mini-work /tmp/lc` reuses the BERT-Mini of BENCHMARKS.md's learning-curve run if that
directory still holds it, else builds it there with --pretrain-steps updates), the news store
and the continued-pretraining run in WORK/news.sqlite and WORK/dapt-mini.

    # the full table (about 2 h on 2 idle cores, the BERT-Mini and its continued pretraining
    # included; measured 2026-12-01, see benchmarks/README.md)
    python3 benchmarks/transfer_techniques.py --graft .build/release/graft --data ../shared/data \\
        --work /tmp/transfer --threads 2 --mini-work /tmp/lc \\
        --json benchmarks/results/transfer-techniques.jsonl --markdown benchmarks/results/transfer-techniques.md
    # a smoke run (minutes; the scores mean nothing)
    python3 benchmarks/transfer_techniques.py --graft .build/release/graft --data ../shared/data \\
        --work /tmp/tt-smoke --threads 1 --limit-train 48 --epochs 1 --pretrain-steps 5
    # a subset
    python3 benchmarks/transfer_techniques.py ... --only rt-plain,rt-distill

--limit-train N passes --limit-train N to every finetune/distill and scores on the first N dev
examples (rt-snippets) / sentences (CoNLL-2003) instead of all (--limit-dev overrides that; the
single-task and multi-task runs get derived task specs in WORK/data/specs with data.dev
replaced); --epochs overrides every spec's epochs. Prints progress with timestamps on stderr and
the Markdown table on stdout; --json writes (overwrites) one JSON object per table row with the
machine (CPU model, cores), the load average at the start and end, the graft commit
(`git rev-parse HEAD` of this checkout; the binary is whatever --graft names, its SHA-256 is
recorded) and the command line.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import time

from learning_curve import bert_mini_commands, dev_evals, pretrain_command  # benchmarks/ is sys.path[0] when run as a script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ZERO_SHOT_LABELS = "pos=a great, enjoyable, moving film;neg=a dull, boring, bad film"   # as zero_few_shot.sh
SHOTS_PER_CLASS = 16

# key -> (task, label); the order is the table's and (nearly) the running order.
ROWS = [
    ("rt-plain", "sentiment", "plain fine-tuning (MiniLM)"),
    ("rt-scratch", "sentiment", "from scratch (`--baseline scratch`, random init)"),
    ("rt-features", "sentiment", "feature extraction (`--freeze-encoder --cache-features`)"),
    ("rt-features-mean", "sentiment", "feature extraction with mean pooling (`... --pooling mean`)"),
    ("rt-probe", "sentiment", "linear probe: mean pooling, `--head-lr 1e-3`, 10 epochs on the cached features"),
    ("rt-top2", "sentiment", "`--unfreeze-top 2`"),
    ("rt-gradual", "sentiment", "`--gradual-unfreeze`"),
    ("rt-lld", "sentiment", "`--layer-lr-decay 0.8`"),
    ("rt-surgery", "sentiment", "surgery: `graft surgery --every 2` (3 layers), fine-tuned"),
    ("rt-layer3", "sentiment", "`--from-layer 3`"),
    ("rt-distill", "sentiment", "distillation into BERT-Mini size (`graft distill --student bert-mini`)"),
    ("rt-zero-shot", "sentiment", "zero-shot (label descriptions, no training)"),
    ("rt-few-shot", "sentiment", f"few-shot, {SHOTS_PER_CLASS} per class (no training)"),
    ("multitask", "sentiment", "multi-task sentiment + NER (one encoder, two heads)"),
    ("rt-mini", "sentiment", "BERT-Mini pretrained by Graft, fine-tuned"),
    ("rt-mini-dapt", "sentiment", "BERT-Mini + continued MLM on news (`graft pretrain --from`), fine-tuned"),
    ("ner-plain", "ner", "plain fine-tuning (MiniLM)"),
    ("ner-features", "ner", "feature extraction (`--freeze-encoder --cache-features`)"),
    ("ner-gradual", "ner", "`--gradual-unfreeze`"),
    ("ner-surgery", "ner", "surgery: `graft surgery --every 2` (3 layers), fine-tuned"),
]
KEYS = [k for k, _, _ in ROWS]
# the table's rows (the multi-task run gives one per task; NER's after the other NER rows)
TABLE_ORDER = [k for k in KEYS if k != "multitask" and k not in ("rt-mini", "rt-mini-dapt")]
TABLE_ORDER[TABLE_ORDER.index("rt-few-shot") + 1:TABLE_ORDER.index("rt-few-shot") + 1] = ["rt-multitask", "rt-mini", "rt-mini-dapt"]
TABLE_ORDER.append("ner-multitask")


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def q(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


class RowError(Exception):
    pass


class Bench:
    def __init__(self, a):
        self.a = a
        self.graft = os.path.abspath(a.graft)
        self.data = os.path.abspath(a.data)
        self.work = os.path.abspath(a.work)
        self.env = dict(os.environ, GRAFT_DATA_DIR=self.data)
        self.threads = ["--threads", str(a.threads)]
        self.db = os.path.join(self.work, "runs.sqlite")
        self.done = {}          # key -> list of records (this invocation)
        os.makedirs(os.path.join(self.work, "runs"), exist_ok=True)

    # ---------- running commands ----------
    def run(self, cmd, logfile, capture=True):
        """Runs cmd (stderr appended to logfile); returns (stdout, seconds). Raises RowError on failure."""
        log("$ " + q(cmd))
        t = time.time()
        with open(logfile, "a") as err:
            err.write("$ " + q(cmd) + "\n")
            err.flush()
            start = err.tell()
            p = subprocess.run([str(c) for c in cmd], env=self.env, text=True, stderr=err,
                               stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
        seconds = time.time() - t
        if p.returncode != 0:
            tail = ""
            try:   # the last lines this command wrote to stderr (progress lines split at carriage returns)
                with open(logfile, errors="replace") as f:
                    f.seek(start)
                    lines = [l.strip() for l in re.split(r"[\r\n]", f.read()) if l.strip()]
                tail = " / ".join(lines[-3:])
            except OSError:
                pass
            raise RowError(f"exit {p.returncode}: {q(cmd)}: {tail[-600:] or '(nothing on stderr)'}")
        return p.stdout, seconds

    def run_json(self, cmd, logfile):
        stdout, seconds = self.run(cmd, logfile)
        objs = [l for l in stdout.strip().splitlines() if l.startswith("{")]
        if not objs:
            raise RowError(f"no JSON on stdout: {q(cmd)}")
        return json.loads(objs[-1]), seconds

    # ---------- shared inputs ----------
    def prepare(self):
        a, d = self.a, os.path.join(self.work, "data")
        os.makedirs(d, exist_ok=True)
        limit = a.limit_dev if a.limit_dev is not None else a.limit_train
        rt_dev = os.path.join(self.data, "sentiment", "rt-snippets", "dev.tsv")
        conll_dev = os.path.join(self.data, "ner", "conll2003", "dev.txt")
        self.rt_spec = os.path.join(ROOT, "tasks", "sentiment-rt.toml")
        self.ner_spec = os.path.join(ROOT, "tasks", "ner-conll2003.toml")
        if limit:
            with open(rt_dev, encoding="utf-8") as f:
                lines = f.read().splitlines()
            rt_dev_l = os.path.join(d, f"rt-dev-{limit}.tsv")
            with open(rt_dev_l, "w", encoding="utf-8") as f:
                f.write("\n".join(lines[:limit + 1]) + "\n")
            sents = read_conll_blocks(conll_dev)[:limit]
            conll_dev_l = os.path.join(d, f"conll-dev-{limit}.txt")
            with open(conll_dev_l, "w", encoding="utf-8") as f:
                f.write("\n\n".join("\n".join(s) for s in sents) + "\n")
            rt_dev, conll_dev = rt_dev_l, conll_dev_l
            specs = os.path.join(d, "specs")
            os.makedirs(specs, exist_ok=True)
            self.rt_spec = derive_spec(self.rt_spec, rt_dev, specs)
            self.ner_spec = derive_spec(self.ner_spec, conll_dev, specs)
        self.rt_dev, self.conll_dev, self.dev_limit = rt_dev, conll_dev, limit
        # inputs of the speed measurements: one document per line
        self.rt_texts = os.path.join(d, "rt-dev-texts.txt")
        texts = []
        with open(rt_dev, encoding="utf-8") as f:
            for i, line in enumerate(f):
                line = line.rstrip("\n")
                if i == 0 or not line:
                    continue
                texts.append(line.split("\t", 1)[1])
        with open(self.rt_texts, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
        self.rt_docs = len(texts)
        self.conll_texts = os.path.join(d, "conll-dev-sentences.txt")
        sents = [" ".join(l.split()[0] for l in s) for s in read_conll_blocks(conll_dev)]
        with open(self.conll_texts, "w", encoding="utf-8") as f:
            f.write("\n".join(sents) + "\n")
        self.conll_docs = len(sents)
        # few-shot examples: the first K training examples of each label, in file order
        self.shots = os.path.join(d, f"shots-{SHOTS_PER_CLASS}.tsv")
        n, out = {}, []
        with open(os.path.join(self.data, "sentiment", "rt-snippets", "train.tsv"), encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i == 0 or not line.strip():
                    continue
                label = line.split("\t", 1)[0]
                if n.get(label, 0) < SHOTS_PER_CLASS:
                    n[label] = n.get(label, 0) + 1
                    out.append(line.rstrip("\n"))
        with open(self.shots, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")

    def minilm(self):
        m = os.path.join(self.work, "minilm")
        if not os.path.exists(os.path.join(m, "config.json")):
            shutil.rmtree(m, ignore_errors=True)
            self.run([self.graft, "import", os.path.join(self.data, "models", "all-MiniLM-L6-v2"), "--out", m],
                     os.path.join(self.work, "prepare.log"))
        return m

    def minilm3(self):
        m = os.path.join(self.work, "minilm-3")
        marker = m + ".json"
        if not os.path.exists(marker):
            shutil.rmtree(m, ignore_errors=True)
            stdout, seconds = self.run([self.graft, "surgery", "--model", self.minilm(), "--every", "2", "--out", m, "--json"],
                                       os.path.join(self.work, "prepare.log"))
            with open(marker, "w") as f:
                json.dump({"surgery": last_json(stdout), "seconds": round(seconds, 2)}, f)
        with open(marker) as f:
            return m, json.load(f)

    def bert_mini(self):
        """BERT-Mini pretrained as benchmarks/learning_curve.py does it, in its layout (reused when finished)."""
        a = self.a
        w = os.path.abspath(a.mini_work or os.path.join(self.work, "lc"))
        mini = os.path.join(w, "bert-mini")
        logf = os.path.join(w, "pretrain.log")
        # learning_curve.py moves pretrain.log into bert-mini/ once pretraining has finished
        if os.path.exists(os.path.join(mini, "best", "config.json")) and os.path.exists(os.path.join(mini, "pretrain.log")):
            return os.path.join(mini, "best"), {"reused": mini, "steps": steps_of_pretrain_log(os.path.join(mini, "pretrain.log"))}
        os.makedirs(w, exist_ok=True)
        db = os.path.join(w, "corpus.sqlite")
        plog = os.path.join(w, "prepare.log")
        for p in (db, mini, os.path.join(w, "wp8k")):
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
        s = a.pretrain_steps
        add, tok, pre = bert_mini_commands(self.graft, self.data, w, s, a.pretrain_lr, self.threads)
        self.run(add + ["--quiet"], plog)
        self.run(tok, plog)
        _, seconds = self.run(pre, logf, capture=False)
        os.replace(logf, os.path.join(mini, "pretrain.log"))
        return os.path.join(mini, "best"), {"built": mini, "steps": s, "seconds": round(seconds, 1)}

    def dapt_mini(self, mini_best):
        """Continued MLM pretraining of the BERT-Mini on the news corpus (graft pretrain --from)."""
        a = self.a
        out = os.path.join(self.work, "dapt-mini")
        marker = out + ".json"
        if os.path.exists(marker):
            with open(marker) as f:
                return os.path.join(out, "best"), json.load(f)
        shutil.rmtree(out, ignore_errors=True)
        db = os.path.join(self.work, "news.sqlite")
        plog = os.path.join(self.work, "dapt.log")
        if not os.path.exists(db + ".done"):
            if os.path.exists(db):
                os.remove(db)
            self.run([self.graft, "corpus", "add", os.path.join(self.data, "corpora", "news-2017-en.jsonl"),
                      "--format", "jsonl", "--db", db, "--quiet"], plog)
            open(db + ".done", "w").close()
        s = a.dapt_steps if a.dapt_steps is not None else a.pretrain_steps
        _, seconds = self.run(pretrain_command(self.graft, db, out, s, a.dapt_lr, self.threads, from_model=mini_best,
                                               seq_len=128), plog, capture=False)
        info = {"from": mini_best, "steps": s, "lr": a.dapt_lr, "seconds": round(seconds, 1),
                "dev": dev_evals(plog)}
        with open(marker, "w") as f:
            json.dump(info, f)
        return os.path.join(out, "best"), info

    # ---------- training and measuring ----------
    def common(self):
        c = ["--db", self.db, "--json"] + self.threads
        if self.a.epochs:
            c += ["--epochs", self.a.epochs]
        if self.a.limit_train:
            c += ["--limit-train", self.a.limit_train]
        return c

    def train(self, rowdir, cmd):
        """Runs a training command once (train.json keeps its summary); returns (summary, command)."""
        tj = os.path.join(rowdir, "train.json")
        if os.path.exists(tj):
            with open(tj) as f:
                t = json.load(f)
            log(f"  reusing {tj}")
            return t["summary"], t["command"]
        shutil.rmtree(os.path.join(rowdir, "run"), ignore_errors=True)
        summary, seconds = self.run_json(cmd, os.path.join(rowdir, "train.log"))
        with open(tj, "w") as f:
            json.dump({"summary": summary, "command": q(cmd), "wall_seconds": round(seconds, 1),
                       "finished_utc": utc()}, f)
        return summary, q(cmd)

    def finetune(self, rowdir, spec, model, extra=()):
        return self.train(rowdir, [self.graft, "finetune", "--task", spec, "--model", model,
                                   "--out", os.path.join(rowdir, "run")] + list(extra) + self.common())

    def speed(self, rowdir, task, model, extra=()):
        """Documents/s of graft classify (sentiment) / graft tag (NER) over the dev texts, whole command."""
        if task == "sentiment":
            cmd, inp, n = [self.graft, "classify", "--model", model], self.rt_texts, self.rt_docs
        else:
            cmd, inp, n = [self.graft, "tag", "--model", model], self.conll_texts, self.conll_docs
        cmd = cmd + list(extra) + self.threads + [inp]
        times = []
        out = os.path.join(rowdir, f"speed-{task}.jsonl")
        for _ in range(self.a.speed_repeat):
            log("$ " + q(cmd) + " > " + out)
            t = time.time()
            with open(out, "w") as o, open(os.path.join(rowdir, "speed.log"), "a") as err:
                p = subprocess.run([str(c) for c in cmd], env=self.env, stdout=o, stderr=err)
            times.append(time.time() - t)
            if p.returncode != 0:
                raise RowError(f"exit {p.returncode}: {q(cmd)} (see {rowdir}/speed.log)")
        with open(out) as f:
            lines = sum(1 for _ in f)
        if lines != n:
            raise RowError(f"{q(cmd)} wrote {lines} lines for {n} documents")
        sec = statistics.median(times)
        return {"docs": n, "speed_seconds": round(sec, 2), "docs_per_s": round(n / sec, 1),
                "speed_runs": [round(t, 2) for t in times], "speed_command": q(cmd)}

    def record(self, key, task, model, summary, command, speed_extra=(), score=None, **more):
        metric = "accuracy" if task == "sentiment" else "f1"
        if score is None:
            score = summary.get("best_dev_" + metric, summary.get(metric))
        rec = {"row": key, "task": task, "metric": metric, "score": score,
               "train_seconds": summary.get("train_seconds") if summary else None,
               "epochs": summary.get("epochs") if summary else None,
               "steps": summary.get("steps") if summary else None,
               "model": model, "command": command, "summary": summary}
        rec.update(model_size(model))
        rec.update(self.speed(os.path.join(self.work, "runs", key), task, model, speed_extra))
        rec.update(more)
        return rec

    # ---------- rows ----------
    def row(self, key):
        """Runs (or reuses) one row; returns its records. Never raises."""
        if key in self.done:
            return self.done[key]
        rowdir = os.path.join(self.work, "runs", key)
        rj = os.path.join(rowdir, "result.json")
        if os.path.exists(rj):
            with open(rj) as f:
                recs = json.load(f)
            log(f"{key}: reusing {rj}")
            for r in recs:
                r["reused"] = True
            self.done[key] = recs
            return recs
        if self.a.report_only:
            log(f"{key}: not finished yet (--report-only: left out)")
            self.done[key] = []
            return []
        os.makedirs(rowdir, exist_ok=True)
        log(f"{key}: start")
        started, load0, t0 = utc(), os.getloadavg(), time.time()
        try:
            recs = getattr(self, "row_" + key.replace("-", "_"))(key, rowdir)
            for r in recs:
                r.update({"started_utc": started, "finished_utc": utc(), "row_wall_seconds": round(time.time() - t0, 1),
                          "loadavg_before": load0, "loadavg_after": os.getloadavg(), "commit": git_commit()})
            with open(rj, "w") as f:
                json.dump(recs, f, indent=1)
            for r in recs:
                log(f"{r['row']}: {r['metric']} {fmt(r['score'], 4)}, train {fmt(r.get('train_seconds'), 1)} s, "
                    f"{r['parameters']:,} parameters, {r['docs_per_s']} docs/s")
        except Exception as e:   # a failed row is recorded, the table goes on
            msg = str(e) if isinstance(e, RowError) else f"{type(e).__name__}: {e}"
            log(f"{key}: FAILED: {msg}")
            task = next(t for k, t, _ in ROWS if k == key)
            recs = [{"row": key, "task": task, "error": msg, "started_utc": started, "finished_utc": utc()}]
            if key == "multitask":
                recs = [dict(recs[0], row="rt-multitask", task="sentiment"), dict(recs[0], row="ner-multitask", task="ner")]
        self.done[key] = recs
        return recs

    def _plain_variant(key, extra, task="sentiment"):
        def f(self, k, rowdir):
            spec = self.rt_spec if task == "sentiment" else self.ner_spec
            model = self.minilm()
            summary, cmd = self.finetune(rowdir, spec, model, extra)
            return [self.record(k, task, os.path.join(rowdir, "run", "best"), summary, cmd)]
        return f

    def row_rt_plain(self, key, rowdir):
        # the transfer half of rt-scratch's `--baseline scratch` run: the same command, seed and data
        # as a plain run (the scratch half trains after it), so the plain run is not trained twice
        scratch_dir = os.path.join(self.work, "runs", "rt-scratch")
        os.makedirs(scratch_dir, exist_ok=True)
        summary, cmd = self.finetune(scratch_dir, self.rt_spec, self.minilm(), ["--baseline", "scratch"])
        return [self.record(key, "sentiment", os.path.join(scratch_dir, "run", "best"),
                            summary.get("transfer") or {}, cmd)]

    row_rt_features = _plain_variant("rt-features", ["--freeze-encoder", "--cache-features"])
    row_rt_features_mean = _plain_variant("rt-features-mean", ["--freeze-encoder", "--cache-features", "--pooling", "mean"])
    row_rt_probe = _plain_variant("rt-probe", ["--freeze-encoder", "--cache-features", "--pooling", "mean",
                                               "--head-lr", "1e-3", "--epochs", "10"])
    row_rt_top2 = _plain_variant("rt-top2", ["--unfreeze-top", "2"])
    row_rt_gradual = _plain_variant("rt-gradual", ["--gradual-unfreeze"])
    row_rt_lld = _plain_variant("rt-lld", ["--layer-lr-decay", "0.8"])
    row_rt_layer3 = _plain_variant("rt-layer3", ["--from-layer", "3"])
    row_ner_plain = _plain_variant("ner-plain", [], "ner")
    row_ner_features = _plain_variant("ner-features", ["--freeze-encoder", "--cache-features"], "ner")
    row_ner_gradual = _plain_variant("ner-gradual", ["--gradual-unfreeze"], "ner")

    def row_rt_scratch(self, key, rowdir):
        summary, cmd = self.finetune(rowdir, self.rt_spec, self.minilm(), ["--baseline", "scratch"])   # reused by rt-plain
        scratch = summary.get("scratch") or {}
        return [self.record(key, "sentiment", os.path.join(rowdir, "run", "scratch", "best"), scratch, cmd,
                            transfer_half=summary.get("transfer"), difference=summary.get("difference"))]

    def _surgery(self, key, rowdir, task):
        m3, info = self.minilm3()
        spec = self.rt_spec if task == "sentiment" else self.ner_spec
        summary, cmd = self.finetune(rowdir, spec, m3)
        return [self.record(key, task, os.path.join(rowdir, "run", "best"), summary, cmd,
                            surgery=info, surgery_model=m3)]

    def row_rt_surgery(self, key, rowdir):
        return self._surgery(key, rowdir, "sentiment")

    def row_ner_surgery(self, key, rowdir):
        return self._surgery(key, rowdir, "ner")

    def row_rt_distill(self, key, rowdir):
        teacher = (self.row("rt-plain") or [{"error": "not finished (--report-only)"}])[0]
        if "error" in teacher:
            raise RowError("the teacher (rt-plain) failed: " + teacher["error"])
        summary, cmd = self.train(rowdir, [self.graft, "distill", "--teacher", teacher["model"], "--student", "bert-mini",
                                           "--task", self.rt_spec, "--out", os.path.join(rowdir, "run"),
                                           "--temperature", "2", "--alpha", "0.5"] + self.common())
        rec = self.record(key, "sentiment", os.path.join(rowdir, "run", "best"), summary, cmd, teacher=teacher["model"])
        if rec["score"] is not None and teacher.get("score"):
            rec["share_of_teacher_score"] = round(rec["score"] / teacher["score"], 4)
        rec["speed_multiple_of_teacher"] = round(rec["docs_per_s"] / teacher["docs_per_s"], 2)
        rec["parameters_share_of_teacher"] = round(rec["parameters"] / teacher["parameters"], 4)
        return [rec]

    def _shot(self, key, rowdir, extra):
        model = self.minilm()
        cmd = [self.graft, "evaluate", "--model", model, "--data", self.rt_dev, "--json"] + extra + self.threads
        summary, seconds = self.run_json(cmd, os.path.join(rowdir, "evaluate.log"))
        summary = dict(summary, train_seconds=None)
        return [self.record(key, "sentiment", model, summary, q(cmd), speed_extra=extra,
                            score=summary.get("accuracy"), evaluate_seconds=round(seconds, 1))]

    def row_rt_zero_shot(self, key, rowdir):
        return self._shot(key, rowdir, ["--zero-shot", "--labels", ZERO_SHOT_LABELS])

    def row_rt_few_shot(self, key, rowdir):
        return self._shot(key, rowdir, ["--examples", self.shots, "--labels", "pos;neg"])

    def row_multitask(self, key, rowdir):
        summary, cmd = self.train(rowdir, [self.graft, "finetune", "--task", self.rt_spec, "--task", self.ner_spec,
                                           "--model", self.minilm(), "--out", os.path.join(rowdir, "run")] + self.common())
        best = os.path.join(rowdir, "run", "best")
        recs = []
        for task, head, data, row in (("sentiment", "sentiment-rt", self.rt_dev, "rt-multitask"),
                                      ("ner", "ner-conll2003", self.conll_dev, "ner-multitask")):
            ev, seconds = self.run_json([self.graft, "evaluate", "--model", best, "--head", head, "--data", data, "--json"]
                                        + self.threads, os.path.join(rowdir, "evaluate.log"))
            metric = "accuracy" if task == "sentiment" else "f1"
            rec = self.record(key, task, best, summary, cmd, speed_extra=["--head", head], score=ev.get(metric),
                              evaluate=ev, head=head)
            rec["row"] = row
            recs.append(rec)
        return recs

    def row_rt_mini(self, key, rowdir):
        mini, info = self.bert_mini()
        summary, cmd = self.finetune(rowdir, self.rt_spec, mini)
        return [self.record(key, "sentiment", os.path.join(rowdir, "run", "best"), summary, cmd, bert_mini=info)]

    def row_rt_mini_dapt(self, key, rowdir):
        mini, info = self.bert_mini()
        adapted, dapt = self.dapt_mini(mini)
        summary, cmd = self.finetune(rowdir, self.rt_spec, adapted)
        return [self.record(key, "sentiment", os.path.join(rowdir, "run", "best"), summary, cmd, bert_mini=info, dapt=dapt)]


# ---------- helpers ----------
def utc():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fmt(x, digits):
    return "—" if x is None else f"{x:.{digits}f}"


def last_json(stdout):
    objs = [l for l in stdout.strip().splitlines() if l.startswith("{")]
    return json.loads(objs[-1]) if objs else None


def read_conll_blocks(path):
    """Sentences of a CoNLL file as lists of lines (-DOCSTART- blocks dropped)."""
    blocks, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    blocks.append(cur)
                cur = []
                continue
            if line.split()[0] == "-DOCSTART-":
                continue
            cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def derive_spec(spec, dev, outdir):
    """A copy of a task spec whose data.dev is DEV (the limited dev set of a smoke run)."""
    with open(spec, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r'(?m)^dev\s*=.*$', f'dev = "{dev}"', text)
    if n != 1:
        raise SystemExit(f"{spec}: expected one dev = line")
    out = os.path.join(outdir, os.path.basename(spec))
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return out


def model_size(model):
    """Parameters (from the safetensors header) and MB of model.safetensors."""
    p = os.path.join(model, "model.safetensors")
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    params = sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return {"parameters": params, "model_mb": round(os.path.getsize(p) / 1e6, 2)}


def steps_of_pretrain_log(path):
    m = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"pretrain\s+(\d+)/(\d+) steps", line) or m
    return int(m.group(2)) if m else None


def git_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
        return head + ("+dirty" if dirty else "")
    except OSError:
        return None


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "system": platform.platform()}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def markdown(records, meta, a):
    by = {r["row"]: r for r in records}
    plain = {"sentiment": by.get("rt-plain"), "ner": by.get("ner-plain")}
    lines = []
    for task, title in (("sentiment", "rt-snippets sentiment (dev accuracy %)"), ("ner", "CoNLL-2003 NER (dev entity F1 %)")):
        rows = [r for r in records if r["task"] == task]
        if not rows:
            continue
        lines += [f"**{title}**", "",
                  "| technique | dev score | Δ vs plain | training time | parameters | model.safetensors | docs/s | notes |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        base = plain[task]
        for r in rows:
            label = r.get("label", r["row"])
            if "error" in r:
                lines.append(f"| {label} | — | — | — | — | — | — | failed: {r['error'][:300].replace('|', '/')} |")
                continue
            score = "—" if r["score"] is None else f"{100 * r['score']:.1f}"
            delta = ""
            if base and "error" not in base and r is not base and r["score"] is not None and base.get("score") is not None:
                delta = f"{100 * (r['score'] - base['score']):+.1f}"
            ts = "none" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f} s"
            notes = []
            if r["row"] == "rt-scratch" and r.get("transfer_half"):
                notes.append(f"transfer half of the same run: {100 * (r['transfer_half'].get('best_dev_accuracy') or 0):.1f}")
            if r["row"] == "rt-distill":
                if r.get("share_of_teacher_score") is not None:
                    notes.append(f"{100 * r['share_of_teacher_score']:.1f}% of the teacher's accuracy")
                notes.append(f"{r['speed_multiple_of_teacher']:.2f}x the teacher's speed, "
                             f"{100 * r['parameters_share_of_teacher']:.0f}% of its parameters")
            if r["row"] in ("rt-multitask", "ner-multitask"):
                notes.append("one run and one model for both tasks (time and size shared)")
            if r["row"] in ("rt-surgery", "ner-surgery"):
                notes.append("layers 0, 2, 4 of MiniLM")
            if r["row"] in ("rt-mini", "rt-mini-dapt") and r.get("bert_mini"):
                notes.append(f"BERT-Mini: {r['bert_mini'].get('steps')} pretraining updates")
            if r["row"] == "rt-mini-dapt" and r.get("dapt"):
                notes.append(f"+ {r['dapt']['steps']} MLM updates on news in {r['dapt']['seconds']:.0f} s")
            if r["row"] in ("rt-zero-shot", "rt-few-shot"):
                notes.append("all-MiniLM-L6-v2 as is")
            if r.get("reused"):
                when = r.get("started_utc", "?")[:16].replace("T", " ")
                at = "" if r.get("commit") == meta["commit"] else f" at {str(r.get('commit'))[:10]}"
                notes.append(f"run {when} UTC{at}")
            lines.append(f"| {label} | {score} | {delta} | {ts} | {r['parameters']:,} | {r['model_mb']:.1f} MB | "
                         f"{r['docs_per_s']:.0f} | {'; '.join(notes)} |")
        lines.append("")
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    lines.append(f"{meta['machine']['cpu_model']}, {meta['machine']['cores']} cores, {a.threads} threads; "
                 f"load {la0[0]:.1f} at the start, {la1[0]:.1f} at the end; graft commit {meta['commit']}. "
                 "Training time: the run's own train_seconds; docs/s: whole `graft classify` / `graft tag` "
                 f"command over {meta['rt_dev_docs']:,} rt-snippets dev texts / {meta['conll_dev_docs']:,} "
                 "CoNLL-2003 dev sentences (model loading included); MB = 10^6 bytes.")
    if a.limit_train or a.epochs or meta.get("dev_limit"):
        lines.append("")
        lines.append(f"Subset run (--limit-train {a.limit_train}, --epochs {a.epochs}, dev limited to {meta.get('dev_limit')}, "
                     f"--pretrain-steps {a.pretrain_steps}): a check of the commands, not the benchmark.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", default=os.path.join(ROOT, ".build/release/graft"))
    ap.add_argument("--data", default=os.environ.get("GRAFT_DATA_DIR", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--work", default="/tmp/graft-transfer-techniques")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit-train", type=int, help="--limit-train N for every finetune/distill; also limits dev to N (smoke runs)")
    ap.add_argument("--limit-dev", type=int, help="score on the first N dev examples/sentences (default: --limit-train's N, else all)")
    ap.add_argument("--epochs", type=int, help="override every spec's epochs (smoke runs)")
    ap.add_argument("--only", help="comma-separated rows to run: " + ", ".join(KEYS))
    ap.add_argument("--mini-work", help="learning_curve.py's work dir holding bert-mini/ (reused when finished; "
                                        "default WORK/lc, built there when missing)")
    ap.add_argument("--pretrain-steps", type=int, default=600, help="BERT-Mini pretraining updates when it is built here (default 600, as BENCHMARKS.md's learning curve)")
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--dapt-steps", type=int, help="continued-MLM updates on news (default: --pretrain-steps)")
    ap.add_argument("--dapt-lr", type=float, default=5e-4)
    ap.add_argument("--report-only", action="store_true", help="run nothing: the table of the rows already finished in WORK")
    ap.add_argument("--speed-repeat", type=int, default=1, help="runs of each speed measurement (median)")
    ap.add_argument("--json", help="write one JSON object per table row to this file")
    ap.add_argument("--markdown", help="also write the table to this file")
    a = ap.parse_args()

    keys = KEYS if not a.only else a.only.split(",")
    bad = [k for k in keys if k not in KEYS]
    if bad:
        ap.error(f"unknown row(s) {', '.join(bad)}; rows: {', '.join(KEYS)}")
    b = Bench(a)
    meta = {"started_utc": utc(), "loadavg_start": os.getloadavg(), "machine": machine(), "commit": git_commit(),
            "graft": b.graft, "graft_sha256": sha256(b.graft), "threads": a.threads, "command": q([sys.executable] + sys.argv)}
    log(f"{meta['machine']['cpu_model']}, {meta['machine']['cores']} cores, load {meta['loadavg_start'][0]:.2f}, "
        f"commit {meta['commit']}; work {b.work}")
    b.prepare()
    meta.update(dev_limit=b.dev_limit, rt_dev_docs=b.rt_docs, conll_dev_docs=b.conll_docs)
    # the teacher and the NER baseline first; the BERT-Mini rows (pretraining) last
    order = sorted(keys, key=lambda k: (k not in ("rt-plain", "ner-plain"), k in ("rt-mini", "rt-mini-dapt"), KEYS.index(k)))
    for k in order:
        b.row(k)
    # the plain rows of the tasks in the table, finished earlier, as the reference of the Δ column
    for k, task in (("rt-plain", "sentiment"), ("ner-plain", "ner")):
        if k not in b.done and any(r["task"] == task for rs in b.done.values() for r in rs) \
                and os.path.exists(os.path.join(b.work, "runs", k, "result.json")):
            a.report_only, saved = True, a.report_only
            b.row(k)
            a.report_only = saved
    labels = {k: l for k, _, l in ROWS}
    labels.update({"rt-multitask": labels["multitask"], "ner-multitask": labels["multitask"]})
    records = []
    for k in KEYS:                       # table order; rows run as prerequisites are included
        for r in b.done.get(k, []):
            r["label"] = labels[r["row"]]
            records.append(r)
    records.sort(key=lambda r: (r["task"] != "sentiment", TABLE_ORDER.index(r["row"])))
    meta.update(finished_utc=utc(), loadavg_end=os.getloadavg())
    if a.json:
        with open(a.json, "w") as f:
            for r in records:
                f.write(json.dumps(dict(r, meta=meta)) + "\n")
    table = markdown(records, meta, a)
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")
    failed = [r["row"] for r in records if "error" in r]
    if failed:
        log(f"failed rows: {', '.join(failed)} (rerun to retry them; finished rows are reused)")


if __name__ == "__main__":
    main()
