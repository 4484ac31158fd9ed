#!/usr/bin/env bash
# Fine-tunes small task heads quickly (1 epoch on a few examples) for the transformers parity check:
#   scripts/make_parity_heads.sh OUT && python3 scripts/check_hf_heads.py --graft .build/release/graft \
#       --model OUT/bert-sequence/best --model OUT/bert-token/best --model OUT/bert-qa/best \
#       --model OUT/gpt2-sequence/best --model OUT/gpt2-token/best
# BERT heads start from all-MiniLM-L6-v2 (../shared/data or $GRAFT_DATA_DIR); the GPT-2 heads from a
# tiny random GPT-2 (2 layers x 64, the GPT-2 vocabulary in vocab/gpt2) made with transformers.
set -euo pipefail
OUT=${1:?usage: make_parity_heads.sh OUT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${GRAFT_DATA_DIR:-$ROOT/../shared/data}
GRAFT=${GRAFT:-$ROOT/.build/release/graft}
mkdir -p "$OUT"
DB="$OUT/runs.sqlite"
"$GRAFT" import "$DATA/models/all-MiniLM-L6-v2" --out "$OUT/minilm" > /dev/null
"$GRAFT" finetune --task "$ROOT/tasks/sentiment-sample.toml" --model "$OUT/minilm" --out "$OUT/bert-sequence" \
    --epochs 1 --limit-train 128 --db "$DB"
"$GRAFT" finetune --task "$ROOT/tasks/ner-sample.toml" --model "$OUT/minilm" --out "$OUT/bert-token" \
    --epochs 1 --limit-train 64 --db "$DB"
python3 - "$DATA/qa/dev.json" "$OUT/qa-dev20.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8")); n = 0; out = []
for a in d["data"]:
    for p in a["paragraphs"]:
        if n < 20:
            out.append({"title": a.get("title", ""), "paragraphs": [p]}); n += len(p["qas"])
json.dump({"version": "1.1", "data": out}, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
"$GRAFT" finetune --task "$ROOT/tasks/qa-shared.toml" --model "$OUT/minilm" --out "$OUT/bert-qa" \
    --epochs 1 --limit-train 32 --dev "$OUT/qa-dev20.json" --db "$DB"
python3 - "$ROOT/vocab/gpt2" "$OUT/gpt2-random" <<'PY'
import os, shutil, sys, torch
from transformers import GPT2Config, GPT2Model
torch.manual_seed(0)
GPT2Model(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=256)).save_pretrained(sys.argv[2])
shutil.copy(os.path.join(sys.argv[1], "encoder.json"), os.path.join(sys.argv[2], "vocab.json"))
shutil.copy(os.path.join(sys.argv[1], "vocab.bpe"), os.path.join(sys.argv[2], "merges.txt"))
PY
"$GRAFT" import "$OUT/gpt2-random" --out "$OUT/gpt2" > /dev/null
"$GRAFT" finetune --task "$ROOT/tasks/sentiment-sample.toml" --model "$OUT/gpt2" --out "$OUT/gpt2-sequence" \
    --epochs 1 --limit-train 128 --lr 1e-3 --db "$DB"
"$GRAFT" finetune --task "$ROOT/tasks/ner-sample.toml" --model "$OUT/gpt2" --out "$OUT/gpt2-token" \
    --epochs 1 --limit-train 64 --lr 1e-3 --db "$DB"
