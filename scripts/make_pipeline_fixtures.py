"""Reference encodings for pairs, truncation (with overflow and stride) and padding, made with
HuggingFace tokenizers (pip install tokenizers==0.23.3). Writes
Tests/GraftTokenizersTests/Fixtures/pipeline-cases.jsonl. Run from the repository root:

    python3 scripts/make_pipeline_fixtures.py
"""
import json
from tokenizers import Tokenizer

FIX = "Tests/GraftTokenizersTests/Fixtures"
bert = Tokenizer.from_file(f"{FIX}/tokenizers/bert-uncased/tokenizer.json")
gpt2 = Tokenizer.from_file(f"{FIX}/tokenizers/gpt2/tokenizer.json")

question = "Which river flows through the Céske Budějovice region?"
context = ("The Vltava is the longest river within the Czech Republic, running southeast along the Bohemian Forest "
           "and then north across Bohemia, through Český Krumlov, České Budějovice, and Prague, merging with the Elbe.")
short = "A tiny sentence."
texts = [short, question, context, "", "naïve café 東京 🤗 — über-long-hyphenated-word"]


def enc(e):
    return {
        "ids": e.ids, "tokens": e.tokens, "offsets": [list(o) for o in e.offsets], "type_ids": e.type_ids,
        "attention_mask": e.attention_mask, "special_tokens_mask": e.special_tokens_mask,
        "word_ids": e.word_ids, "sequence_ids": e.sequence_ids,
        "overflowing": [enc(o) for o in e.overflowing],
    }


cases = []


def case(name, tok_name, tok, inputs, truncation=None, padding=None, pair=False):
    tok.no_truncation()
    tok.no_padding()
    if truncation:
        tok.enable_truncation(**truncation)
    if padding:
        tok.enable_padding(**padding)
    if pair:
        out = tok.encode_batch(inputs)
    else:
        out = tok.encode_batch(inputs)
    cases.append({"name": name, "tokenizer": tok_name, "inputs": inputs, "truncation": truncation,
                  "padding": padding, "encodings": [enc(e) for e in out]})


case("bert-pair-plain", "bert-uncased", bert, [[question, context], [short, question]])
case("bert-pair-only-second-stride", "bert-uncased", bert, [[question, context]],
     truncation={"max_length": 40, "stride": 10, "strategy": "only_second"})
case("bert-pair-longest-first", "bert-uncased", bert, [[question, context], [context, short], [short, question]],
     truncation={"max_length": 24, "stride": 0, "strategy": "longest_first"})
case("bert-pair-only-first", "bert-uncased", bert, [[context, short]],
     truncation={"max_length": 20, "stride": 4, "strategy": "only_first"})
case("bert-single-truncate-stride", "bert-uncased", bert, texts,
     truncation={"max_length": 12, "stride": 3, "strategy": "longest_first"})
case("bert-pad-longest", "bert-uncased", bert, texts, padding={"pad_id": 0, "pad_token": "[PAD]"})
case("bert-pad-fixed-multiple", "bert-uncased", bert, texts,
     truncation={"max_length": 30}, padding={"length": 30, "pad_to_multiple_of": 8, "pad_id": 0, "pad_token": "[PAD]"})
case("bert-pad-left", "bert-uncased", bert, texts, padding={"direction": "left", "pad_id": 0, "pad_token": "[PAD]"})
case("gpt2-truncate-stride", "gpt2", gpt2, texts, truncation={"max_length": 8, "stride": 2})
case("gpt2-pad-longest", "gpt2", gpt2, texts, padding={"pad_id": 50256, "pad_token": "<|endoftext|>"})

with open(f"{FIX}/pipeline-cases.jsonl", "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(f"wrote {len(cases)} cases")
