#!/usr/bin/env python3
"""HuggingFace transformers fine-tuning of all-MiniLM-L6-v2 on the shared sentiment, NER and QA
data (the reference side of issue 9), optionally alternated in one run with a Graft command.

What is measured, per task, in a fresh subprocess (`--task X --_child`) so that peak memory does
not mix between tasks: `Trainer.train()` wall time, dev-set evaluation time and scores, tokens
per second and peak RSS. The checkpoint (a BertModel, tensors without a `bert.` prefix) is
loaded with AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering}
.from_pretrained(dir, num_labels=..., id2label=..., label2id=...), so the heads are freshly
initialised (seed 42, set before the model is built).

Training follows `Trainer` defaults except where the issue fixes a value: AdamW (the Trainer's
default optimizer, `adamw_torch_fused` for torch >= 2.8; betas 0.9/0.999, eps 1e-8, weight decay
0), linear decay with 6% warm-up (`warmup_ratio=0.06`; transformers 5 spells it
`warmup_steps=0.06`), gradient clipping at norm 1.0 (default), batch 32, seed 42 (`--seed`), CPU
(`use_cpu=True`), `torch.set_num_threads(--threads)`, random batches (no length grouping) with
dynamic padding to the longest example of each batch. Changed from the defaults, none of which
alter the training arithmetic: no checkpoints written (`save_strategy="no"`), no evaluation
during training, no tqdm (progress is logged to stderr instead), no reporting integrations,
evaluation batch 32 instead of 8.

Tasks:
  * sentiment: rt-snippets (sentiment/rt-snippets/{train,dev}.tsv, header `label<TAB>text`, each
    line split at its first TAB, labels neg=0, pos=1). 3 epochs, lr 1e-4, max length 64,
    DataCollatorWithPadding. Dev accuracy and macro-F1 (mean of the two classes' F1).
  * ner: CoNLL-2003 (ner/conll2003/{train,dev}.txt, 4 space-separated columns, tag last,
    `-DOCSTART-` lines skipped, blank line between sentences, IOB2 tags). 2 epochs, lr 5e-5, max
    length 128; words go to the fast tokenizer with is_split_into_words=True, the first subword
    of each word carries the word's label, the other subwords and the specials -100;
    DataCollatorForTokenClassification. Dev entity precision/recall/F1 with seqeval in strict
    IOB2 mode (`mode='strict', scheme=IOB2`, micro average). A word cut off by the 128-token
    truncation is predicted `O` and still scored against its gold tag (HF's run_ner instead
    drops such words from gold and prediction alike; the count is reported as
    `dev_truncated_sentences`, 0 on the full CoNLL-2003 dev set at length 128 is expected).
  * qa: the shared QA set (qa/{train,dev}.json, SQuAD v1.1 layout). 8 epochs, lr 1e-4, max length
    384, doc stride 128, HF run_qa preprocessing (question + context, truncation="only_second",
    overflowing windows with return_offsets_mapping, padding to max length, a window that does
    not contain the whole answer is labelled with the [CLS] index) and run_qa's default
    collator (default_data_collator); postprocessing as run_qa's utils_qa
    (postprocess_qa_predictions, SQuAD v1: n-best 20, max answer length 30, the best-scoring
    span over all windows of a question). Scored with the official SQuAD v1.1 evaluate-v1.1.py
    (verbatim in scripts/squad_v1.py, shared with scripts/make_metric_fixtures.py), reported as
    fractions.

Tokens: every training batch passes through a counting wrapper around the collator:
`train_tokens` = input_ids elements (including padding), `train_real_tokens` = attention-mask
sum; `tokens_per_s` = train_tokens / train_seconds, `real_tokens_per_s` likewise.
Peak memory: `peak_rss_mb` = ru_maxrss of the child process (resource.getrusage, which includes
the interpreter, torch and the data); the parent also records each child's ru_maxrss from
os.wait4 (`wait4_rss_mb`), and measures the Graft command the same way.

Usage:
    pip install 'torch==2.13.0+cpu' transformers safetensors seqeval accelerate
    # one task or all, human-readable summary on stdout, progress on stderr
    python3 benchmarks/hf_finetune_bench.py --task sentiment [--task ner ...|--task all]
    # one JSON object per task on stdout (the table, if any, goes to stderr)
    python3 benchmarks/hf_finetune_bench.py --task all --json
    # smoke test
    python3 benchmarks/hf_finetune_bench.py --task all --limit-train 64 --limit-dev 32 --epochs 1 --json
    # QA in two stages: one epoch on generated questions (`graft cloze-qa`), then the real ones
    python3 benchmarks/hf_finetune_bench.py --task qa --first-train cloze.json --first-epochs 1
    # alternated with Graft, N repeats, sides alternate and swap order each repeat
    python3 benchmarks/hf_finetune_bench.py --task all --repeat 3 \
        --graft-cmd '.build/release/graft finetune --task tasks/{task}.toml --out /tmp/g-{task} --json'
    # check the metric code against hand-computed examples, then exit
    python3 benchmarks/hf_finetune_bench.py --self-test
Options --epochs, --lr, --max-length override the task's value (for every task given);
--limit-train N / --limit-dev N keep the first N examples (sentences for NER, questions for QA).

The Graft template is run with `bash -c` after substituting {task} (sentiment|ner|qa),
{epochs}, {lr}, {max_length}, {threads} and {seed} (other braces are left alone); it gets OMP_NUM_THREADS etc. set to
--threads. Its last stdout line that parses as a JSON object is taken as its result (the
metric keys above, and optionally `train_seconds`, `tokens_per_s`, `peak_rss_mb`; with
--first-train the command runs both stages, each printing its JSON line, and their
`train_seconds`, `eval_seconds` and `checkpoint_seconds` are summed); the script
records its wall time and its peak RSS from wait4 (Linux reports the largest of `bash` and the
processes it waited for, i.e. the Graft process's own peak). The side-by-side table compares HF and Graft medians: training seconds
(Graft's own `train_seconds` when it reports one, otherwise its wall time; Graft's includes its
per-epoch dev evaluations and checkpoint writes, which HF's run here does not do), the same
without those two parts (`train-eval s`: Graft's `train_seconds - eval_seconds -
checkpoint_seconds`, against HF's `train_seconds`, i.e. the same work), peak RSS (wait4 for
both sides) and the task's scores, with ratios Graft/HF.

Versions used when this was written: Python 3.11.7, torch 2.13.0+cpu, transformers 5.24.0,
tokenizers 0.23.3, accelerate 1.15.0, safetensors 0.8.0, seqeval 1.2.2, numpy 2.4.6 (the JSON
output records the versions actually used).
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import squad_v1  # noqa: E402  (the official SQuAD v1.1 evaluation, one copy)
from squad_v1 import exact_match_score, f1_score  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
TASKS = ("sentiment", "ner", "qa")
TASK_DEFAULTS = {
    "sentiment": {"epochs": 3, "lr": 1e-4, "max_length": 64},
    "ner": {"epochs": 2, "lr": 5e-5, "max_length": 128},
    "qa": {"epochs": 8, "lr": 1e-4, "max_length": 384},
}
METRIC_KEYS = {
    "sentiment": ("accuracy", "macro_f1"),
    "ner": ("f1", "precision", "recall"),
    "qa": ("exact_match", "f1"),
}
BATCH = 32
SEED = 42
WARMUP = 0.06
DOC_STRIDE = 128
N_BEST = 20
MAX_ANSWER_LENGTH = 30


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

def classification_metrics(gold, pred, n_labels):
    correct = sum(int(g == p) for g, p in zip(gold, pred))
    f1s = []
    for c in range(n_labels):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"accuracy": correct / len(gold) if gold else 0.0,
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0}


def seqeval_metrics(gold_seqs, pred_seqs):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    return {"f1": float(f1_score(gold_seqs, pred_seqs, **kw)),
            "precision": float(precision_score(gold_seqs, pred_seqs, **kw)),
            "recall": float(recall_score(gold_seqs, pred_seqs, **kw))}


def squad_evaluate(dataset, predictions):
    """The official SQuAD v1.1 evaluate() (scripts/squad_v1.py); `dataset` is the file's "data"
    list. Fractions 0-1 instead of the official percentages."""
    return {k: v / 100.0 for k, v in squad_v1.evaluate(dataset, predictions).items()}


def self_test():
    """Metric code against hand-computed values; exits non-zero on a mismatch."""
    fails = []

    def check(name, got, want, tol=1e-9):
        ok = abs(got - want) <= tol
        log(f"self-test {name}: got {got:.6f} want {want:.6f} {'ok' if ok else 'MISMATCH'}")
        if not ok:
            fails.append(name)

    # seqeval strict IOB2. Gold entities: s1 PER(0-1), LOC(3); s2 ORG(0-2), MISC(4); s3 none.
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"],
            ["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"],
            ["O", "O"]]
    # Predictions: s1 PER(0-1) correct; "I-LOC" after O at 3 is no entity in strict mode
    # (default conlleval mode would read it as LOC(3) and count it correct).
    # s2: B-ORG I-LOC I-ORG: type change inside the entity -> ORG(0) only, wrong span; the I-ORG
    # at 2 follows I-LOC so starts nothing in strict mode; MISC(4) correct.
    # s3: a spurious B-PER.
    pred = [["B-PER", "I-PER", "O", "I-LOC", "O"],
            ["B-ORG", "I-LOC", "I-ORG", "O", "B-MISC"],
            ["B-PER", "O"]]
    # gold entities 4; predicted entities PER(0-1), ORG(0-0), MISC(4), PER(s3) = 4; correct 2.
    m = seqeval_metrics(gold, pred)
    check("seqeval precision", m["precision"], 2 / 4)
    check("seqeval recall", m["recall"], 2 / 4)
    check("seqeval f1", m["f1"], 0.5)
    # The same in seqeval's default (conlleval-like) mode differs, so strict mode is what ran:
    # it also finds LOC(3), LOC(s2:1), ORG(s2:2): 7 predicted, 3 correct (PER, LOC, MISC).
    from seqeval.metrics import f1_score as seqeval_f1
    check("seqeval default-mode f1 (contrast)", float(seqeval_f1(gold, pred)),
          2 * (3 / 7) * (3 / 4) / (3 / 7 + 3 / 4))
    # all-O predictions and all-O gold: zero_division=0 -> 0.
    m = seqeval_metrics([["O", "O"]], [["O", "O"]])
    check("seqeval empty f1", m["f1"], 0.0)

    # SQuAD v1.1: articles, punctuation, case and whitespace are normalised away.
    check("squad em articles/punct", float(exact_match_score("The Eiffel Tower!", "eiffel  tower")), 1.0)
    check("squad em differs", float(exact_match_score("Eiffel", "Eiffel Tower")), 0.0)
    # pred "in Paris France" vs gold "Paris": common 1, p=1/3, r=1 -> f1 = 0.5
    check("squad f1 partial", f1_score("in Paris, France", "Paris"), 0.5)
    check("squad f1 empty prediction", float(f1_score("", "Paris")), 0.0)
    check("squad f1 only articles", float(f1_score("the", "a")), 0.0)
    data = [{"paragraphs": [{"context": "x", "qas": [
        {"id": "q1", "answers": [{"text": "1889"}, {"text": "in 1889"}]},
        {"id": "q2", "answers": [{"text": "Gustave Eiffel"}]},
        {"id": "q3", "answers": [{"text": "iron"}]}]}]}]
    # q1: EM 1 (max over golds), F1 1; q2: "Eiffel" -> EM 0, F1 2*(1*0.5)/1.5 = 2/3; q3 unanswered 0.
    r = squad_evaluate(data, {"q1": "in 1889.", "q2": "Eiffel"})
    check("squad evaluate em", r["exact_match"], 1 / 3)
    check("squad evaluate f1", r["f1"], (1 + 2 / 3) / 3)

    # classification: gold 0,0,1,1  pred 0,1,1,1 -> acc .75; F1(0)=2/3, F1(1)=.8
    c = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2)
    check("accuracy", c["accuracy"], 0.75)
    check("macro f1", c["macro_f1"], (2 / 3 + 0.8) / 2)
    if fails:
        log(f"self-test FAILED: {fails}")
        return 1
    log("self-test passed")
    return 0


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

def read_tsv(path, limit):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t", 1)
        if header != ["label", "text"]:
            raise SystemExit(f"{path}: expected header 'label<TAB>text', got {header}")
        for n, line in enumerate(f, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            if "\t" not in line:
                raise SystemExit(f"{path}:{n}: no TAB")
            label, text = line.split("\t", 1)
            rows.append((label, text))
            if limit and len(rows) >= limit:
                break
    return rows


def read_conll(path, limit):
    sents, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sents.append((words, tags))
                    words, tags = [], []
                    if limit and len(sents) >= limit:
                        return sents
                continue
            cols = line.split(" ")
            if cols[0] == "-DOCSTART-":
                continue
            if len(cols) != 4:
                raise SystemExit(f"{path}:{n}: expected 4 columns, got {len(cols)}")
            words.append(cols[0])
            tags.append(cols[-1])
    if words and not (limit and len(sents) >= limit):
        sents.append((words, tags))
    return sents


def read_squad(path, limit):
    """Returns (examples, data) with data cut to the kept questions (for the evaluator)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    examples, kept = [], []
    for article in data:
        paras = []
        for para in article["paragraphs"]:
            qas = []
            for qa in para["qas"]:
                if limit and len(examples) >= limit:
                    break
                examples.append({"id": qa["id"], "question": qa["question"],
                                 "context": para["context"], "answers": qa["answers"]})
                qas.append(qa)
            if qas:
                paras.append(dict(para, qas=qas))
        if paras:
            kept.append(dict(article, paragraphs=paras))
    return examples, kept


class ListDataset:
    """A map-style dataset over a list of feature dicts (no `datasets` dependency)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class CountingCollator:
    """Wraps a collator and counts the tokens of every batch it builds."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens = 0
        self.real_tokens = 0
        self.batches = 0

    def __call__(self, features):
        batch = self.inner(features)
        self.tokens += int(batch["input_ids"].numel())
        self.real_tokens += int(batch["attention_mask"].sum())
        self.batches += 1
        return batch


# ----------------------------------------------------------------------------------------
# Tasks: each returns (model, train_features, train_collator, eval_features, eval_collator,
# score(predictions) -> metrics, info)
# ----------------------------------------------------------------------------------------

def setup_sentiment(args, tok, model_dir):
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding
    d = os.path.join(args.data, "sentiment", "rt-snippets")
    train = read_tsv(os.path.join(d, "train.tsv"), args.limit_train)
    dev = read_tsv(os.path.join(d, "dev.tsv"), args.limit_dev)
    labels = ["neg", "pos"]
    lid = {l: i for i, l in enumerate(labels)}
    for name, rows in (("train", train), ("dev", dev)):
        bad = {l for l, _ in rows if l not in lid}
        if bad:
            raise SystemExit(f"sentiment {name}: unknown labels {sorted(bad)}")

    def feats(rows):
        enc = tok([t for _, t in rows], truncation=True, max_length=args.max_length)
        return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                 "attention_mask": enc["attention_mask"][i], "labels": lid[rows[i][0]]}
                for i in range(len(rows))]

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=lid)
    gold = [lid[l] for l, _ in dev]

    def score(pred_out):
        logits = pred_out.predictions
        pred = logits.argmax(-1).tolist()
        return classification_metrics(gold, pred, len(labels))

    collator = DataCollatorWithPadding(tok)
    return (model, feats(train), collator, feats(dev), DataCollatorWithPadding(tok), score,
            {"train_examples": len(train), "dev_examples": len(dev), "labels": labels})


def setup_ner(args, tok, model_dir):
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification
    d = os.path.join(args.data, "ner", "conll2003")
    train = read_conll(os.path.join(d, "train.txt"), args.limit_train)
    dev = read_conll(os.path.join(d, "dev.txt"), args.limit_dev)
    tagset = {t for _, ts in train for t in ts} | {t for _, ts in dev for t in ts}
    types = sorted({t[2:] for t in tagset if t != "O"})
    labels = ["O"] + [f"{p}-{ty}" for ty in types for p in ("B", "I")]
    lid = {l: i for i, l in enumerate(labels)}
    bad = tagset - set(labels)
    if bad:
        raise SystemExit(f"ner: tags outside IOB2 {sorted(bad)}")

    def feats(sents):
        enc = tok([w for w, _ in sents], is_split_into_words=True, truncation=True,
                  max_length=args.max_length)
        out, word_ids_all = [], []
        for i, (_, tags) in enumerate(sents):
            wids = enc.word_ids(i)
            lab, prev = [], None
            for w in wids:
                lab.append(-100 if w is None or w == prev else lid[tags[w]])
                prev = w
            out.append({"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                        "attention_mask": enc["attention_mask"][i], "labels": lab})
            word_ids_all.append(wids)
        return out, word_ids_all

    model = AutoModelForTokenClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=lid)
    train_f, _ = feats(train)
    dev_f, dev_wids = feats(dev)
    truncated = 0
    for (words, _), wids in zip(dev, dev_wids):
        if len({w for w in wids if w is not None}) < len(words):
            truncated += 1

    def score(pred_out):
        arg = pred_out.predictions.argmax(-1)
        gold_seqs, pred_seqs = [], []
        for i, (words, tags) in enumerate(dev):
            pred = ["O"] * len(words)   # words lost to truncation stay O
            prev = None
            for pos, w in enumerate(dev_wids[i]):
                if w is not None and w != prev:
                    pred[w] = labels[int(arg[i, pos])]
                prev = w
            gold_seqs.append(list(tags))
            pred_seqs.append(pred)
        return seqeval_metrics(gold_seqs, pred_seqs)

    return (model, train_f, DataCollatorForTokenClassification(tok), dev_f,
            DataCollatorForTokenClassification(tok), score,
            {"train_examples": len(train), "dev_examples": len(dev), "labels": labels,
             "dev_truncated_sentences": truncated,
             "dev_entities": sum(t.startswith("B-") for _, ts in dev for t in ts)})


def setup_qa(args, tok, model_dir):
    import numpy as np
    from transformers import AutoModelForQuestionAnswering, default_data_collator
    d = os.path.join(args.data, "qa")
    train, _ = read_squad(os.path.join(d, "train.json"), args.limit_train)
    dev, dev_data = read_squad(os.path.join(d, "dev.json"), args.limit_dev)
    pad_on_right = tok.padding_side == "right"
    assert pad_on_right, "run_qa preprocessing here assumes right padding (BERT)"
    L = args.max_length

    def encode(examples):
        return tok([e["question"].lstrip() for e in examples], [e["context"] for e in examples],
                   truncation="only_second", max_length=L, stride=DOC_STRIDE,
                   return_overflowing_tokens=True, return_offsets_mapping=True,
                   padding="max_length")

    # run_qa prepare_train_features
    def train_features(examples):
        enc = encode(examples)
        feats = []
        for i, offsets in enumerate(enc["offset_mapping"]):
            input_ids = enc["input_ids"][i]
            cls_index = input_ids.index(tok.cls_token_id)
            seq_ids = enc.sequence_ids(i)
            ex = examples[enc["overflow_to_sample_mapping"][i]]
            ans = ex["answers"][0]
            start_char = ans["answer_start"]
            end_char = start_char + len(ans["text"])
            ts = 0
            while seq_ids[ts] != 1:
                ts += 1
            te = len(input_ids) - 1
            while seq_ids[te] != 1:
                te -= 1
            if not (offsets[ts][0] <= start_char and offsets[te][1] >= end_char):
                sp = ep = cls_index
            else:
                while ts < len(offsets) and offsets[ts][0] <= start_char:
                    ts += 1
                sp = ts - 1
                while offsets[te][1] >= end_char:
                    te -= 1
                ep = te + 1
            feats.append({"input_ids": input_ids, "token_type_ids": enc["token_type_ids"][i],
                          "attention_mask": enc["attention_mask"][i],
                          "start_positions": sp, "end_positions": ep})
        return feats

    train_f = train_features(train)
    first = {}
    if getattr(args, "first_train", None):   # stage 1 of a two-stage recipe (generated questions)
        first_examples, _ = read_squad(args.first_train, 0)
        first = {"_first_features": train_features(first_examples), "first_train_examples": len(first_examples)}

    # run_qa prepare_validation_features
    enc = encode(dev)
    dev_f, dev_offsets, dev_example_idx = [], [], []
    for i in range(len(enc["input_ids"])):
        seq_ids = enc.sequence_ids(i)
        dev_example_idx.append(enc["overflow_to_sample_mapping"][i])
        dev_offsets.append([o if seq_ids[k] == 1 else None
                            for k, o in enumerate(enc["offset_mapping"][i])])
        dev_f.append({"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                      "attention_mask": enc["attention_mask"][i]})

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)

    def score(pred_out):
        # utils_qa.postprocess_qa_predictions, version_2_with_negative=False
        all_start, all_end = pred_out.predictions[:2] if isinstance(pred_out.predictions, tuple) \
            else pred_out.predictions
        feats_per_ex = {}
        for fi, ei in enumerate(dev_example_idx):
            feats_per_ex.setdefault(ei, []).append(fi)
        preds = {}
        for ei, ex in enumerate(dev):
            prelim = []
            for fi in feats_per_ex.get(ei, []):
                start_logits, end_logits, offs = all_start[fi], all_end[fi], dev_offsets[fi]
                start_indexes = np.argsort(start_logits)[-1: -N_BEST - 1: -1].tolist()
                end_indexes = np.argsort(end_logits)[-1: -N_BEST - 1: -1].tolist()
                for s in start_indexes:
                    for e in end_indexes:
                        if (s >= len(offs) or e >= len(offs) or offs[s] is None
                                or len(offs[s]) < 2 or offs[e] is None or len(offs[e]) < 2):
                            continue
                        if e < s or e - s + 1 > MAX_ANSWER_LENGTH:
                            continue
                        prelim.append({"offsets": (offs[s][0], offs[e][1]),
                                       "score": float(start_logits[s] + end_logits[e])})
            best = sorted(prelim, key=lambda x: x["score"], reverse=True)[:N_BEST]
            texts = [ex["context"][p["offsets"][0]:p["offsets"][1]] for p in best]
            if not texts or (len(texts) == 1 and texts[0] == ""):
                texts.insert(0, "empty")
            preds[ex["id"]] = texts[0]
        return squad_evaluate(dev_data, preds)

    return (model, train_f, default_data_collator, dev_f, default_data_collator, score,
            dict({"train_examples": len(train), "train_features": len(train_f),
                  "dev_examples": len(dev), "dev_features": len(dev_f)}, **first))


SETUP = {"sentiment": setup_sentiment, "ner": setup_ner, "qa": setup_qa}


# ----------------------------------------------------------------------------------------
# Child: one task
# ----------------------------------------------------------------------------------------

def versions():
    v = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "tokenizers", "accelerate", "safetensors", "seqeval",
                "numpy"):
        try:
            from importlib.metadata import version
            v[mod] = version(mod)
        except Exception:  # noqa: BLE001 - record what is there
            v[mod] = None
    return v


def child_main(args):
    task = args.task[0]
    for k, v in task_settings(task, args).items():
        setattr(args, k, v)
    import torch
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import transformers
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments, set_seed
    transformers.logging.set_verbosity_warning()

    t0 = time.time()
    model_dir = args.model
    tok = AutoTokenizer.from_pretrained(model_dir)
    if not tok.is_fast:
        raise SystemExit("needs a fast tokenizer (offsets, word_ids)")
    set_seed(args.seed)
    model, train_f, train_coll, dev_f, dev_coll, score, info = SETUP[task](args, tok, model_dir)
    counting = CountingCollator(train_coll)
    steps_per_epoch = math.ceil(len(train_f) / BATCH)
    total_steps = steps_per_epoch * args.epochs
    log(f"{task}: {info.get('train_examples')} train examples ({len(train_f)} features), "
        f"{info.get('dev_examples')} dev ({len(dev_f)} features), {total_steps} steps, "
        f"epochs {args.epochs}, lr {args.lr}, max length {args.max_length}, "
        f"{args.threads} threads; setup {time.time() - t0:.1f}s")

    targs = dict(
        output_dir=tempfile.mkdtemp(prefix=f"hf_finetune_{task}_"),
        per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
        learning_rate=args.lr, num_train_epochs=args.epochs, lr_scheduler_type="linear",
        seed=args.seed, use_cpu=True, save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, logging_strategy="steps",
        logging_steps=max(1, total_steps // 20))
    fields = TrainingArguments.__dataclass_fields__
    if "warmup_ratio" in fields:
        targs["warmup_ratio"] = WARMUP
    else:                       # transformers >= 5: a float < 1 in warmup_steps is a ratio
        targs["warmup_steps"] = WARMUP
    targs = {k: v for k, v in targs.items() if k in fields or k == "output_dir"}
    training_args = TrainingArguments(**targs)
    first_f = info.pop("_first_features", None)

    class Progress(TrainerCallback):
        def __init__(self):
            self.start = None

        def on_train_begin(self, a, state, control, **kw):
            self.start = time.time()

        def on_log(self, a, state, control, logs=None, **kw):
            if not logs or "loss" not in logs or not state.max_steps:
                return
            el = time.time() - self.start
            eta = el / max(state.global_step, 1) * (state.max_steps - state.global_step)
            log(f"{task}: step {state.global_step}/{state.max_steps} epoch "
                f"{state.epoch:.2f} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} "
                f"{counting.tokens / el:.0f} tok/s elapsed {el:.0f}s eta {eta:.0f}s")

    first_rec = {}
    if first_f is not None:
        # Stage 1 of a two-stage recipe (as `graft finetune --train GENERATED --epochs N` then a
        # second `graft finetune` from its model): its own Trainer and schedule, then stage 2
        # continues from the trained weights. Reported times are the two stages' sum.
        first_steps = math.ceil(len(first_f) / BATCH) * args.first_epochs
        first_args = TrainingArguments(**dict(targs, num_train_epochs=args.first_epochs,
                                              logging_steps=max(1, first_steps // 20)))
        log(f"{task}: stage 1: {len(first_f)} features from {args.first_train}, {first_steps} steps, "
            f"epochs {args.first_epochs}")
        first_trainer = Trainer(model=model, args=first_args, train_dataset=ListDataset(first_f),
                                data_collator=counting, callbacks=[Progress()])
        t = time.time()
        first_trainer.train()
        first_s = time.time() - t
        first_rec = {"first_train": args.first_train, "first_epochs": args.first_epochs,
                     "first_train_features": len(first_f), "first_stage_seconds": round(first_s, 3),
                     "first_stage_steps": first_trainer.state.global_step,
                     "first_stage_tokens": counting.tokens, "first_stage_real_tokens": counting.real_tokens}
        log(f"{task}: stage 1 trained in {first_s:.1f}s")
        model = first_trainer.model
        counting.tokens = counting.real_tokens = counting.batches = 0
    trainer = Trainer(model=model, args=training_args, train_dataset=ListDataset(train_f),
                      data_collator=counting, callbacks=[Progress()])
    t = time.time()
    train_out = trainer.train()
    train_s = time.time() - t + first_rec.get("first_stage_seconds", 0)
    log(f"{task}: trained in {train_s:.1f}s, {counting.tokens} tokens "
        f"({counting.real_tokens} real), final loss {train_out.training_loss:.4f}")

    eval_trainer = Trainer(model=trainer.model, args=training_args, data_collator=dev_coll)
    t = time.time()
    pred_out = eval_trainer.predict(ListDataset(dev_f))
    metrics = score(pred_out)
    eval_s = time.time() - t
    log(f"{task}: evaluated in {eval_s:.1f}s: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rec = {"task": task, "side": "hf", "epochs": args.epochs, "lr": args.lr,
           "max_length": args.max_length, "batch_size": BATCH, "seed": args.seed,
           "warmup_ratio": WARMUP, "threads": args.threads,
           "train_seconds": round(train_s, 3), "eval_seconds": round(eval_s, 3),
           "train_steps": trainer.state.global_step, "train_batches": counting.batches,
           "train_tokens": counting.tokens, "train_real_tokens": counting.real_tokens,
           "tokens_per_s": round(counting.tokens / train_s, 1),
           "real_tokens_per_s": round(counting.real_tokens / train_s, 1),
           "real_token_fraction": round(counting.real_tokens / max(counting.tokens, 1), 4),
           "train_loss": round(float(train_out.training_loss), 5),
           "peak_rss_mb": round(peak_mb, 1)}
    rec.update({k: round(float(v), 6) for k, v in metrics.items()})
    rec.update({k: v for k, v in info.items() if k != "labels"})
    rec.update(first_rec)
    rec["optimizer"] = getattr(training_args.optim, "value", str(training_args.optim))
    rec["attn_implementation"] = getattr(trainer.model.config, "_attn_implementation", None)
    rec["versions"] = versions()
    print(json.dumps(rec), flush=True)
    return 0


# ----------------------------------------------------------------------------------------
# Parent: one subprocess per task (and per Graft run), alternated
# ----------------------------------------------------------------------------------------

def thread_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    return env


def run_measured(cmd, env, shell=False):
    """Runs cmd, stderr passed through (progress), stdout captured; returns
    (stdout, rc, wall seconds, ru_maxrss MB from wait4)."""
    t = time.time()
    proc = subprocess.Popen(["bash", "-c", cmd] if shell else cmd, stdout=subprocess.PIPE,
                            stderr=None, text=True, env=env)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.time() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, proc.returncode, wall, round(ru.ru_maxrss / 1024.0, 1)


def json_lines(text):
    """Every stdout line that parses as a JSON object, in order."""
    objs = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                objs.append(obj)
    return objs


def last_json_line(text):
    objs = json_lines(text)
    return objs[-1] if objs else None


def task_settings(task, args):
    d = TASK_DEFAULTS[task]
    return {"epochs": args.epochs if args.epochs is not None else d["epochs"],
            "lr": args.lr if args.lr is not None else d["lr"],
            "max_length": args.max_length if args.max_length is not None else d["max_length"]}


def run_hf(task, args):
    s = task_settings(task, args)
    cmd = [sys.executable, HERE, "--_child", "--task", task, "--epochs", str(s["epochs"]),
           "--lr", str(s["lr"]), "--max-length", str(s["max_length"]),
           "--threads", str(args.threads), "--data", args.data, "--model", args.model,
           "--seed", str(args.seed)]
    if args.limit_train:
        cmd += ["--limit-train", str(args.limit_train)]
    if args.limit_dev:
        cmd += ["--limit-dev", str(args.limit_dev)]
    if args.first_train:
        cmd += ["--first-train", args.first_train, "--first-epochs", str(args.first_epochs)]
    load_before = os.getloadavg()
    out, rc, wall, wait4_mb = run_measured(cmd, thread_env(args.threads))
    rec = last_json_line(out)
    if rc != 0 or rec is None:
        raise SystemExit(f"HF run failed ({task}), exit {rc}: {shlex.join(cmd)}")
    rec.update({"wall_seconds": round(wall, 3), "wait4_rss_mb": wait4_mb,
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
    return rec


def run_graft(task, args):
    s = task_settings(task, args)
    subst = dict(s, task=task, threads=args.threads, seed=args.seed)
    # Only the known placeholders are replaced, so literal braces in the template survive.
    cmd = re.sub(r"\{(" + "|".join(subst) + r")\}", lambda m: str(subst[m.group(1)]),
                 args.graft_cmd)
    load_before = os.getloadavg()
    out, rc, wall, wait4_mb = run_measured(cmd, thread_env(args.threads), shell=True)
    stages = json_lines(out)
    rec = stages[-1] if stages else None
    if rc != 0 or rec is None:
        sys.stderr.write(out[-2000:])
        raise SystemExit(f"Graft run failed or printed no JSON line ({task}), exit {rc}: {cmd}")
    rec = dict(rec)
    rec["reported"] = {k: rec[k] for k in ("train_seconds", "tokens_per_s", "peak_rss_mb")
                       if k in rec}
    if args.first_train:
        # Two stages, each printing its JSON line: the times add up (as HF's train_seconds
        # covers both of its stages); the scores are the last stage's.
        if len(stages) < 2:
            raise SystemExit("--first-train: the Graft command must print one JSON line per stage "
                             f"(got {len(stages)}); give both stages --json: {cmd}")
        rec["stages"] = [{k: o[k] for k in ("train_seconds", "eval_seconds", "checkpoint_seconds",
                                             "train_examples", "epochs", "peak_rss_mb") if k in o}
                         for o in stages]
        for k in ("train_seconds", "eval_seconds", "checkpoint_seconds"):
            if all(k in o for o in stages):
                rec[k] = round(sum(o[k] for o in stages), 3)
    rec.update({"task": task, "side": "graft", "command": cmd, "wall_seconds": round(wall, 3),
                "wait4_rss_mb": wait4_mb, "loadavg_before": load_before,
                "loadavg_after": os.getloadavg()})
    return rec


def med(runs, key):
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def train_time(rec):
    """Graft's own training time when it reports one, else the command's wall time."""
    return rec.get("train_seconds", rec.get("wall_seconds"))


def update_time(rec):
    """Graft's training time without its per-epoch dev evaluations and checkpoint writes (it
    reports both parts), i.e. the work transformers' `Trainer.train()` does here (no evaluation,
    no saving); None when the Graft command does not report the parts."""
    t = rec.get("train_seconds")
    if t is None or "eval_seconds" not in rec or "checkpoint_seconds" not in rec:
        return None
    return round(t - rec["eval_seconds"] - rec["checkpoint_seconds"], 3)


def summarize(task, hf_runs, graft_runs):
    # The HF run with the median training time stands for the task (all runs listed too).
    order = sorted(hf_runs, key=lambda r: r["train_seconds"])
    obj = dict(order[(len(order) - 1) // 2])
    if len(hf_runs) > 1:
        obj["runs"] = hf_runs
        obj["train_seconds_median"] = med(hf_runs, "train_seconds")
        obj["peak_rss_mb_median"] = med(hf_runs, "peak_rss_mb")
    if graft_runs:
        g = {"runs": graft_runs,
             "train_seconds_median": statistics.median(train_time(r) for r in graft_runs),
             "wall_seconds_median": med(graft_runs, "wall_seconds"),
             "update_seconds_median": (statistics.median(update_time(r) for r in graft_runs)
                                       if all(update_time(r) is not None for r in graft_runs) else None),
             "wait4_rss_mb_median": med(graft_runs, "wait4_rss_mb")}
        for k in METRIC_KEYS[task]:
            g[k] = med(graft_runs, k)
        obj["graft"] = g
        h_train = med(hf_runs, "train_seconds")
        h_rss = med(hf_runs, "wait4_rss_mb")
        obj["ratios_graft_over_hf"] = {
            "train_seconds": round(g["train_seconds_median"] / h_train, 4) if h_train else None,
            "update_seconds": (round(g["update_seconds_median"] / h_train, 4)
                               if h_train and g["update_seconds_median"] is not None else None),
            "peak_rss": round(g["wait4_rss_mb_median"] / h_rss, 4) if h_rss else None}
    return obj


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def table(results, out):
    hdr = (f"{'task':9s} {'metric':12s} | {'HF':>9s} {'Graft':>9s} {'G/HF':>6s}")
    lines = [hdr, "-" * len(hdr)]
    for obj in results:
        task, g = obj["task"], obj.get("graft", {})
        rows = [("train s", med(obj.get("runs", [obj]), "train_seconds"),
                 g.get("train_seconds_median"), ".1f"),
                ("train-eval s", med(obj.get("runs", [obj]), "train_seconds"),
                 g.get("update_seconds_median"), ".1f"),
                ("wall s", med(obj.get("runs", [obj]), "wall_seconds"),
                 g.get("wall_seconds_median"), ".1f"),
                ("peak MB", med(obj.get("runs", [obj]), "wait4_rss_mb"),
                 g.get("wait4_rss_mb_median"), ".0f"),
                ("tok/s", med(obj.get("runs", [obj]), "tokens_per_s"),
                 med(g.get("runs", []), "tokens_per_s"), ".0f")]
        rows += [(k, obj.get(k), g.get(k), ".4f") for k in METRIC_KEYS[task]]
        for name, h, gv, spec in rows:
            ratio = gv / h if isinstance(h, (int, float)) and isinstance(gv, (int, float)) and h \
                else None
            lines.append(f"{task:9s} {name:12s} | {fmt(h, '>9' + spec)} {fmt(gv, '>9' + spec)} "
                         f"{fmt(ratio, '>6.3f')}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", action="append", choices=list(TASKS) + ["all"],
                    help="sentiment, ner, qa or all (repeatable)")
    ap.add_argument("--epochs", type=int, help="override the task's epochs")
    ap.add_argument("--lr", type=float, help="override the task's learning rate")
    ap.add_argument("--max-length", type=int, help="override the task's max length")
    ap.add_argument("--limit-train", type=int, default=0, help="keep the first N train examples")
    ap.add_argument("--limit-dev", type=int, default=0, help="keep the first N dev examples")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=SEED,
                    help=f"seed of both sides (default {SEED}, the issue's); the Graft template gets it as {{seed}}")
    ap.add_argument("--repeat", type=int, default=1, help="runs per task and side")
    ap.add_argument("--json", action="store_true", help="one JSON object per task on stdout")
    ap.add_argument("--out", help="also write the JSON objects (one per line) to this file")
    ap.add_argument("--graft-cmd", help="shell command template run alternately with HF "
                    "({task} {epochs} {lr} {max_length} {threads} {seed}); write --graft-cmd='...'")
    ap.add_argument("--data", default=DEFAULT_DATA, help="shared data directory")
    ap.add_argument("--model", default=None,
                    help="checkpoint directory (default DATA/models/all-MiniLM-L6-v2)")
    ap.add_argument("--self-test", action="store_true", help="check the metric code and exit")
    ap.add_argument("--first-train", help="qa: a SQuAD v1.1 file (e.g. `graft cloze-qa` output) "
                    "trained on first, for --first-epochs, before the task's own training "
                    "(train_seconds then covers both stages)")
    ap.add_argument("--first-epochs", type=int, default=1, help="epochs of the --first-train stage")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.task:
        ap.error("give --task (sentiment, ner, qa or all)")
    tasks = []
    for t in args.task:
        for x in (TASKS if t == "all" else (t,)):
            if x not in tasks:
                tasks.append(x)
    args.task = tasks
    if args.first_train and tasks != ["qa"]:
        ap.error("--first-train applies to --task qa alone")
    if args.first_train and not os.path.isfile(args.first_train):
        ap.error(f"--first-train {args.first_train}: no such file")
    if args.first_epochs < 1:
        ap.error("--first-epochs must be at least 1")
    if args.model is None:
        args.model = os.path.join(args.data, "models", "all-MiniLM-L6-v2")
    if args._child:
        return child_main(args)

    sides = ["hf"] + (["graft"] if args.graft_cmd else [])
    results = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for task in tasks:
        runs = {s: [] for s in sides}
        for rep in range(args.repeat):
            order = sides if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                log(f"[{rep + 1}/{args.repeat}] {side} {task} ...")
                rec = run_hf(task, args) if side == "hf" else run_graft(task, args)
                runs[side].append(rec)
                log(f"[{rep + 1}/{args.repeat}] {side} {task}: train {train_time(rec)}s, "
                    f"wall {rec['wall_seconds']}s, peak {rec['wait4_rss_mb']} MB, "
                    + ", ".join(f"{k} {rec.get(k)}" for k in METRIC_KEYS[task]))
        obj = summarize(task, runs["hf"], runs.get("graft"))
        obj["started_utc"] = started
        obj["command"] = shlex.join([sys.executable] + sys.argv)
        results.append(obj)
        if args.json:
            print(json.dumps(obj), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(obj) + "\n")

    if args.graft_cmd:
        table(results, sys.stderr if args.json else sys.stdout)
    elif not args.json:
        for obj in results:
            print(f"{obj['task']}: train {obj['train_seconds']:.1f}s ({obj['epochs']} epochs), "
                  f"eval {obj['eval_seconds']:.1f}s, {obj['tokens_per_s']:.0f} tok/s "
                  f"({obj['real_tokens_per_s']:.0f} real), peak {obj['peak_rss_mb']:.0f} MB, "
                  + ", ".join(f"{k} {obj[k]:.4f}" for k in METRIC_KEYS[obj["task"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
