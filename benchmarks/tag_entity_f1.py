#!/usr/bin/env python3
# Usage: python3 benchmarks/tag_entity_f1.py CONLL_FILE MODEL_DIR GRAFT_BINARY
# Entity F1 of `graft tag` on raw text built from a CoNLL file (words joined by spaces),
# exact (start, end, type) character spans against the gold IOB2 entities.
import json, subprocess, sys
conll, model, graft = sys.argv[1], sys.argv[2], sys.argv[3]
sents, words, tags = [], [], []
for line in open(conll, encoding="utf-8"):
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("-DOCSTART-"):
        if words: sents.append((words, tags)); words, tags = [], []
        continue
    cols = line.split()
    words.append(cols[0]); tags.append(cols[-1])
if words: sents.append((words, tags))
texts, golds = [], []
for ws, ts in sents:
    pos, starts = 0, []
    for w in ws: starts.append(pos); pos += len(w) + 1
    ents, cur = set(), None
    for i, t in enumerate(ts + ["O"]):
        if cur and (t == "O" or t.startswith("B-") or t[2:] != cur[2]):
            ents.add((cur[0], starts[i - 1] + len(ws[i - 1]), cur[2])); cur = None
        if t.startswith("B-") or (t.startswith("I-") and cur is None):
            cur = (starts[i], None, t[2:])
    texts.append(" ".join(ws)); golds.append(ents)
out = subprocess.run([graft, "tag", "--model", model, "--threads", "2"], input="\n".join(texts) + "\n",
                     capture_output=True, text=True, check=True).stdout.splitlines()
tp = fp = fn = 0
for line, gold in zip(out, golds):
    pred = {(e["start"], e["end"], e["type"]) for e in json.loads(line)["entities"]}
    tp += len(pred & gold); fp += len(pred - gold); fn += len(gold - pred)
p = tp / max(tp + fp, 1); r = tp / max(tp + fn, 1)
print(json.dumps({"sentences": len(out), "tag_precision": round(p, 4), "tag_recall": round(r, 4), "tag_f1": round(2 * p * r / max(p + r, 1e-9), 4)}))
