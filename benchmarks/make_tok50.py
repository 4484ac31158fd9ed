"""Builds the 50 MB tokenizer benchmark text (`tok50.jsonl`) that `graft bench tokenizers --corpus`
reads: the lines of wiki-vital + news-2017 + Shakespeare (../shared/data/corpora), in that order,
in documents of 20 lines, repeated until the documents hold 50.0 MB of UTF-8 text.

    python3 benchmarks/make_tok50.py ../shared/data/corpora /tmp/tok50.jsonl
"""
import json
import sys
from pathlib import Path

corpora, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = []
for name in ("wiki-vital-en.jsonl", "news-2017-en.jsonl"):
    with open(corpora / name, encoding="utf-8") as f:
        for row in f:
            lines += [l for l in json.loads(row)["text"].split("\n") if l.strip()]
lines += [l for l in (corpora / "shakespeare-gutenberg.txt").read_text(encoding="utf-8").split("\n") if l.strip()]
documents = ["\n".join(lines[i:i + 20]) for i in range(0, len(lines), 20)]
target, size, count = 50_000_000, 0, 0
with open(out, "w", encoding="utf-8") as f:
    while size < target:
        for d in documents:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
            size += len(d.encode("utf-8"))
            count += 1
            if size >= target:
                break
print(f"{out}: {count} documents, {size / 1e6:.1f} MB of text", file=sys.stderr)
