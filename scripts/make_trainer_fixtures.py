"""Trains HuggingFace tokenizers (pip install tokenizers==0.23.3) on the repository's sample
corpus, as references for Graft's trainers. Writes
Tests/GraftTokenizersTests/Fixtures/trained-sample/{wordpiece,bpe}-2000.json. Run from the
repository root:  python3 scripts/make_trainer_fixtures.py
"""
import json
import os
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer

texts = [json.loads(line)["text"] for line in open("corpora/wiki-vital-sample.jsonl", encoding="utf-8")]
out = "Tests/GraftTokenizersTests/Fixtures/trained-sample"
os.makedirs(out, exist_ok=True)

wp = BertWordPieceTokenizer(lowercase=True)
wp.train_from_iterator(texts, vocab_size=2000)  # min_frequency=2, limit_alphabet=1000, BERT specials
bpe = ByteLevelBPETokenizer(add_prefix_space=False)
bpe.train_from_iterator(texts, vocab_size=2000, special_tokens=["<|endoftext|>"])

for name, tok in [("wordpiece-2000", wp), ("bpe-2000", bpe)]:
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
    with open(f"{out}/{name}.json", "w", encoding="utf-8") as f:
        json.dump({"vocab": [t for t, _ in vocab], "merges": model.get("merges", []), "tokens_on_sample": tokens,
                   "made_with": "tokenizers 0.23.3, scripts/make_trainer_fixtures.py"}, f, ensure_ascii=False)
    print(name, len(vocab), tokens)
