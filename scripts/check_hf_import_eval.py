#!/usr/bin/env python3
"""The reverse of check_hf_heads.py: models fine-tuned in transformers, imported with `graft import`
and scored with `graft evaluate --task SPEC`, get the same scores as the transformers models scored
here in Python on the same dev slice.

    python3 scripts/check_hf_import_eval.py --graft .build/release/graft [--data ../shared/data]
        [--base ../shared/data/models/all-MiniLM-L6-v2] [--work /tmp/hf-import-eval] [--tasks sentiment,ner,qa]

For each task it fine-tunes the base (all-MiniLM-L6-v2) in PyTorch for a few dozen AdamW steps on a
small slice of the training data and saves it with save_pretrained (labels in id2label, the NER
tags in sorted order as transformers' run_ner.py writes them, not Graft's order):
  - sentiment: rt-snippets, BertForSequenceClassification, scored by accuracy;
  - ner: CoNLL-2003, BertForTokenClassification, seqeval strict IOB2 entity F1 (micro);
  - qa: the shared QA set, BertForQuestionAnswering, official SQuAD v1.1 exact match and F1.
The Python side decodes the way Graft's tasks are defined (tasks/*.toml windows): classification
probabilities averaged over windows; NER log-probabilities of each word's first subword, read
from the window where that token is most central, Viterbi over IOB2's allowed transitions;
QA the best start+end logit pair over context tokens of all windows (end >= start, at most 30
tokens), the context sliced at the tokens' offsets. Then `graft import` + `graft evaluate --task
tasks/<spec> --data <dev slice> --json` must give the same metric values. Prints one JSON object
per task; exits 1 on a difference. Needs: pip install torch transformers seqeval numpy
"""
import argparse, collections, json, os, re, string, subprocess, sys, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ---------------------------------------------------------------- data slices

def read_tsv(path, n):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            label, text = line.rstrip("\n").split("\t", 1)
            rows.append((label, text))
            if len(rows) == n:
                break
    return rows


def read_conll(path, n):
    """Sentences as (words, tags): tag in the last column, -DOCSTART- lines skipped."""
    out, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    out.append((words, tags))
                    words, tags = [], []
                    if len(out) == n:
                        break
                continue
            cols = line.split()
            if cols[0] == "-DOCSTART-":
                continue
            words.append(cols[0]); tags.append(cols[-1])
    if words and len(out) < n:
        out.append((words, tags))
    return out


def read_squad(path, n):
    out = []
    for article in json.load(open(path, encoding="utf-8"))["data"]:
        for p in article["paragraphs"]:
            for q in p["qas"]:
                out.append({"id": q["id"], "question": q["question"], "context": p["context"], "answers": q["answers"]})
    return out[:n]


def write_conll(sentences, path):
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in sentences:
            for w, t in zip(words, tags):
                f.write(f"{w} {t}\n")
            f.write("\n")


# ---------------------------------------------------------------- training

def train(model, batches, steps, lr, seed):
    import torch
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, int(0.06 * steps))) * max(0.0, 1 - s / steps))
    model.train()
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def batched(features, size, seed):
    """Padded tensor batches from a list of dicts of equal keys (shuffled once, seeded)."""
    import random, torch
    order = list(range(len(features)))
    random.Random(seed).shuffle(order)
    out = []
    for i in range(0, len(order), size):
        chunk = [features[j] for j in order[i:i + size]]
        length = max(len(f["input_ids"]) for f in chunk)
        b = {}
        for key in chunk[0]:
            if key in ("input_ids", "token_type_ids", "attention_mask"):
                b[key] = torch.tensor([f[key] + [0] * (length - len(f[key])) for f in chunk])
            elif key == "labels" and isinstance(chunk[0][key], list):
                b[key] = torch.tensor([f[key] + [-100] * (length - len(f[key])) for f in chunk])
            else:
                b[key] = torch.tensor([f[key] for f in chunk])
        out.append(b)
    return out


def run_logits(model, enc):
    import torch
    with torch.no_grad():
        kwargs = {k: torch.tensor([enc[k]]) for k in ("input_ids", "token_type_ids", "attention_mask")}
        return model(**kwargs)


# ---------------------------------------------------------------- decoding as Graft defines it

def log_softmax(rows):
    import numpy as np
    rows = np.asarray(rows, dtype=np.float64)
    m = rows.max(-1, keepdims=True)
    return rows - m - np.log(np.exp(rows - m).sum(-1, keepdims=True))


def viterbi_iob2(logp, labels):
    """Best IOB2-valid tag sequence for [W, L] log-probabilities (I-X only after B-X or I-X)."""
    import numpy as np
    L = len(labels)
    pre = [t[0] if t != "O" else "O" for t in labels]
    typ = [t[2:] if t != "O" else "" for t in labels]
    allowed = np.array([[not (pre[b] == "I" and not (pre[a] in "BI" and typ[a] == typ[b])) for b in range(L)] for a in range(L)])
    start = np.array([pre[b] != "I" for b in range(L)])
    score = np.where(start, logp[0], -np.inf)
    back = []
    for i in range(1, len(logp)):
        cand = np.where(allowed, score[:, None], -np.inf)
        arg = cand.argmax(0)
        score = cand[arg, np.arange(L)] + logp[i]
        back.append(arg)
    tags = [int(score.argmax())]
    for arg in reversed(back):
        tags.append(int(arg[tags[-1]]))
    return [labels[t] for t in reversed(tags)]


SQUAD_PUNCT = set(string.punctuation)


def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in SQUAD_PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction, truth):
    p, t = squad_normalize(prediction).split(), squad_normalize(truth).split()
    common = collections.Counter(p) & collections.Counter(t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, examples):
    em = f1 = 0.0
    for e in examples:
        truths = [a["text"] for a in e["answers"]]
        pred = predictions[e["id"]]
        em += max(float(squad_normalize(pred) == squad_normalize(t)) for t in truths)
        f1 += max(squad_f1(pred, t) for t in truths)
    return {"exact_match": em / len(examples), "f1": f1 / len(examples)}


# ---------------------------------------------------------------- tasks

def spec_window(spec):
    text = open(spec, encoding="utf-8").read()
    length = int(re.search(r"^max_length\s*=\s*(\d+)", text, re.M).group(1))
    stride = int(re.search(r"^stride\s*=\s*(\d+)", text, re.M).group(1))
    return length, stride


def sentiment(a, tok, work):
    import numpy as np
    from transformers import AutoModelForSequenceClassification
    labels = ["neg", "pos"]
    train_rows = read_tsv(os.path.join(a.data, "sentiment/rt-snippets/train.tsv"), a.train_examples)
    dev_rows = read_tsv(os.path.join(a.data, "sentiment/rt-snippets/dev.tsv"), a.dev_examples)
    spec = os.path.join(ROOT, "tasks/sentiment-rt.toml")
    length, stride = spec_window(spec)
    model = AutoModelForSequenceClassification.from_pretrained(a.base, num_labels=2, id2label=dict(enumerate(labels)),
                                                               label2id={l: i for i, l in enumerate(labels)})
    feats = []
    for label, text in train_rows:
        e = tok(text, truncation=True, max_length=length)
        feats.append({"input_ids": e["input_ids"], "token_type_ids": e["token_type_ids"], "attention_mask": e["attention_mask"],
                      "labels": labels.index(label)})
    losses = train(model, batched(feats, a.batch_size, a.seed), a.steps, a.lr, a.seed)
    correct = 0
    for label, text in dev_rows:
        enc = tok(text, truncation=True, max_length=length, stride=stride, return_overflowing_tokens=True)
        probs = []
        for w in range(len(enc["input_ids"])):
            z = run_logits(model, {k: enc[k][w] for k in ("input_ids", "token_type_ids", "attention_mask")}).logits[0]
            probs.append(np.exp(log_softmax(z.numpy())))
        p = np.mean(probs, 0)
        correct += labels[int(p.argmax())] == label
    dev = os.path.join(work, "sentiment-dev.tsv")
    with open(dev, "w", encoding="utf-8") as f:
        f.write("label\ttext\n" + "".join(f"{l}\t{t}\n" for l, t in dev_rows))
    return model, spec, dev, {"accuracy": correct / len(dev_rows)}, losses


def ner(a, tok, work):
    import numpy as np
    from transformers import AutoModelForTokenClassification
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2
    train_s = read_conll(os.path.join(a.data, "ner/conll2003/train.txt"), a.train_examples)
    dev_s = read_conll(os.path.join(a.data, "ner/conll2003/dev.txt"), a.dev_examples)
    labels = sorted({t for _, tags in train_s + dev_s for t in tags})   # run_ner.py's order, not Graft's
    spec = os.path.join(ROOT, "tasks/ner-conll2003.toml")
    length, stride = spec_window(spec)
    model = AutoModelForTokenClassification.from_pretrained(a.base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                                            label2id={l: i for i, l in enumerate(labels)})

    def word_spans(words):
        spans, at = [], 0
        for w in words:
            spans.append((at, at + len(w)))
            at += len(w) + 1
        return " ".join(words), spans

    def token_words(offsets, special, spans):
        out = []
        for (s, e), sp in zip(offsets, special):
            word = None
            if not sp and e > s:
                for k, (ws, we) in enumerate(spans):
                    if s < we and e > ws:
                        word = k
                        break
            out.append(word)
        return out

    feats = []
    for words, tags in train_s:
        text, spans = word_spans(words)
        e = tok(text, truncation=True, max_length=length, return_offsets_mapping=True, return_special_tokens_mask=True)
        tw = token_words(e["offset_mapping"], e["special_tokens_mask"], spans)
        seen, lab = set(), []
        for w in tw:
            lab.append(-100 if w is None or w in seen else labels.index(tags[w]))
            if w is not None:
                seen.add(w)
        feats.append({"input_ids": e["input_ids"], "token_type_ids": e["token_type_ids"], "attention_mask": e["attention_mask"], "labels": lab})
    losses = train(model, batched(feats, a.batch_size, a.seed), a.steps, a.lr, a.seed)

    gold, pred, multi = [], [], 0
    for words, tags in dev_s:
        text, spans = word_spans(words)
        enc = tok(text, truncation=True, max_length=length, stride=stride, return_overflowing_tokens=True,
                  return_offsets_mapping=True, return_special_tokens_mask=True)
        windows = []
        for w in range(len(enc["input_ids"])):
            z = run_logits(model, {k: enc[k][w] for k in ("input_ids", "token_type_ids", "attention_mask")}).logits[0].numpy()
            windows.append((enc["offset_mapping"][w], enc["special_tokens_mask"][w], log_softmax(z)))
        multi += len(windows) > 1
        # Graft's WindowMerge: each word's first token (smallest start), from the window where it is most central.
        first = [None] * len(words)
        maps = []
        for offs, special, _ in windows:
            tw = token_words(offs, special, spans)
            maps.append(tw)
            for i, w in enumerate(tw):
                if w is not None and (first[w] is None or offs[i][0] < first[w]):
                    first[w] = offs[i][0]
        best = [None] * len(words)
        for wi, ((offs, special, lp), tw) in enumerate(zip(windows, maps)):
            content = [i for i in range(len(offs)) if not special[i]]
            if not content:
                continue
            lo, hi, seen = content[0], content[-1], set()
            for i in content:
                w = tw[i]
                if w is None or offs[i][0] != first[w] or w in seen:
                    continue
                seen.add(w)
                c = min(i - lo, hi - i)
                if best[w] is None or c > best[w][0]:
                    best[w] = (c, lp[i])
        rows = np.array([b[1] if b is not None else np.full(len(labels), -np.log(len(labels))) for b in best])
        gold.append(tags)
        pred.append(viterbi_iob2(rows, labels))
    dev = os.path.join(work, "ner-dev.txt")
    write_conll(dev_s, dev)
    kw = {"mode": "strict", "scheme": IOB2}
    scores = {"f1": f1_score(gold, pred, **kw), "precision": precision_score(gold, pred, **kw), "recall": recall_score(gold, pred, **kw)}
    return model, spec, dev, scores, losses, {"labels": labels, "multi_window_sentences": multi}


def qa(a, tok, work):
    import numpy as np
    from transformers import AutoModelForQuestionAnswering
    train_q = read_squad(os.path.join(a.data, "qa/train.json"), a.train_examples)
    dev_q = read_squad(os.path.join(a.data, "qa/dev.json"), a.dev_examples)
    spec = os.path.join(ROOT, "tasks/qa-shared.toml")
    length, stride = spec_window(spec)
    train_length, train_stride = a.qa_train_length, a.qa_train_length // 4
    model = AutoModelForQuestionAnswering.from_pretrained(a.base)
    feats = []
    for q in train_q:
        ans = q["answers"][0]
        s_char, e_char = ans["answer_start"], ans["answer_start"] + len(ans["text"])
        enc = tok(q["question"], q["context"], truncation="only_second", max_length=train_length, stride=train_stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True)
        for w in range(len(enc["input_ids"])):
            seq, offs = enc.sequence_ids(w), enc["offset_mapping"][w]
            ctx = [i for i, s in enumerate(seq) if s == 1]
            start = end = 0
            if offs[ctx[0]][0] <= s_char and offs[ctx[-1]][1] >= e_char:
                start = next(i for i in ctx if offs[i][1] > s_char)
                end = max(i for i in ctx if offs[i][0] < e_char)
            feats.append({"input_ids": enc["input_ids"][w], "token_type_ids": enc["token_type_ids"][w],
                          "attention_mask": enc["attention_mask"][w], "start_positions": start, "end_positions": end})
    losses = train(model, batched(feats, a.batch_size, a.seed), a.steps, a.lr, a.seed)
    predictions = {}
    for q in dev_q:
        enc = tok(q["question"], q["context"], truncation="only_second", max_length=length, stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True)
        best = None
        for w in range(len(enc["input_ids"])):
            out = run_logits(model, {k: enc[k][w] for k in ("input_ids", "token_type_ids", "attention_mask")})
            s, e = out.start_logits[0].numpy().astype(np.float64), out.end_logits[0].numpy().astype(np.float64)
            offs, seq = enc["offset_mapping"][w], enc.sequence_ids(w)
            ctx = [i for i in range(len(seq)) if seq[i] == 1 and offs[i][1] > offs[i][0]]
            for a_i, i in enumerate(ctx):
                for j in ctx[a_i:]:
                    if j - i + 1 > 30:
                        break
                    if best is not None and s[i] + e[j] <= best[0]:
                        continue
                    text = q["context"][offs[i][0]:offs[j][1]].strip()
                    if text:
                        best = (s[i] + e[j], text)
        predictions[q["id"]] = best[1] if best else ""
    dev = os.path.join(work, "qa-dev.json")
    json.dump({"version": "1.1", "data": [{"title": "slice", "paragraphs": [
        {"context": q["context"], "qas": [{"id": q["id"], "question": q["question"], "answers": q["answers"]}]} for q in dev_q]}]},
        open(dev, "w", encoding="utf-8"), ensure_ascii=False)
    return model, spec, dev, squad_scores(predictions, dev_q), losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--data", default=os.environ.get("GRAFT_DATA_DIR") or os.path.join(ROOT, "../shared/data"))
    ap.add_argument("--base", help="transformers BERT to fine-tune (default: DATA/models/all-MiniLM-L6-v2)")
    ap.add_argument("--work", default="/tmp/graft-hf-import-eval")
    ap.add_argument("--tasks", default="sentiment,ner,qa")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--train-examples", type=int, default=400)
    ap.add_argument("--dev-examples", type=int, default=200)
    ap.add_argument("--qa-train-length", type=int, default=192)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    a.base = a.base or os.path.join(a.data, "models/all-MiniLM-L6-v2")
    import torch, transformers
    from transformers import AutoTokenizer
    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(a.base)
    ok = True
    for task in a.tasks.split(","):
        t0 = time.time()
        torch.manual_seed(a.seed)
        r = {"sentiment": sentiment, "ner": ner, "qa": qa}[task](a, tok, a.work)
        model, spec, dev, py_scores, losses = r[:5]
        extra = r[5] if len(r) > 5 else {}
        hf_dir, graft_dir = os.path.join(a.work, f"hf-{task}"), os.path.join(a.work, f"graft-{task}")
        model.save_pretrained(hf_dir)
        tok.save_pretrained(hf_dir)
        trained = time.time() - t0
        subprocess.run([a.graft, "import", hf_dir, "--out", graft_dir], check=True, stdout=subprocess.DEVNULL)
        g = json.loads(subprocess.run([a.graft, "evaluate", "--model", graft_dir, "--task", spec, "--data", dev, "--json"],
                                      check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        diff = {k: abs(g[k] - v) for k, v in py_scores.items()}
        same = all(d <= 1e-9 for d in diff.values())
        ok &= same
        print(json.dumps({"task": task, "architecture": model.config.architectures[0], "dev_examples": g["examples"],
                          "steps": a.steps, "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
                          "transformers_scores": py_scores, "graft_scores": {k: g[k] for k in py_scores},
                          "max_abs_difference": max(diff.values()), "same": same, **extra,
                          "seconds": round(time.time() - t0, 1), "train_seconds": round(trained, 1),
                          "transformers": transformers.__version__, "torch": torch.__version__}, ensure_ascii=False), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
