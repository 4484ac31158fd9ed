#!/usr/bin/env python3
"""How length-grouped batches re-weigh a tagger's tokens when each batch's loss is its own mean.

Reads a CoNLL file (word ... tag per line, blank lines between sentences, -DOCSTART- skipped),
cuts the sentences sorted by word count into batches of --batch-size (what Graft's length
grouping does, up to ties), and prints the share of entity tokens (tag not O) and of entity
starts in the loss under two weightings:

- random batches / uniform token weighting: every word weighs the same;
- length-grouped batches with a per-batch mean: a word weighs 1 / (words in its batch).

Words stand in for first subwords (one label each). Usage:
    python3 scripts/token_weight_share.py ../shared/data/ner/conll2003/train.txt
"""
import argparse


def sentences(path):
    out, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if cur:
                    out.append(cur)
                    cur = []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            cur.append(line.split()[-1])
    if cur:
        out.append(cur)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("conll")
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    sents = sentences(a.conll)
    n = len(sents)
    lengths = [len(s) for s in sents]
    order = sorted(range(n), key=lambda i: lengths[i])
    weight = [0.0] * n
    for b in range(0, n, a.batch_size):
        batch = order[b:b + a.batch_size]
        words = sum(lengths[i] for i in batch)
        for i in batch:
            weight[i] = 1.0 / words
    entity = [sum(t != "O" for t in s) for s in sents]
    starts = [sum(t.startswith("B-") for t in s) for s in sents]
    total = sum(lengths)
    grouped = sum(lengths[i] * weight[i] for i in range(n))
    print(f"{n} sentences, {total} words, mean {total / n:.2f} words, batch {a.batch_size}")
    print(f"entity words in the loss: uniform {sum(entity) / total:.4f}, "
          f"length-grouped batch means {sum(entity[i] * weight[i] for i in range(n)) / grouped:.4f}")
    print(f"entity starts in the loss: uniform {sum(starts) / total:.4f}, "
          f"length-grouped batch means {sum(starts[i] * weight[i] for i in range(n)) / grouped:.4f}")
    short = [i for i in range(n) if lengths[i] <= 5]
    print(f"sentences of at most 5 words: {len(short) / n:.1%} of sentences, {sum(lengths[i] for i in short) / total:.1%} "
          f"of words, {sum(lengths[i] * weight[i] for i in short) / grouped:.1%} of the length-grouped loss")


if __name__ == "__main__":
    main()
