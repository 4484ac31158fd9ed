#!/usr/bin/env bash
# Sets everything up and runs Graft's main job as far as it exists: train a WordPiece tokenizer
# on the sample corpus, then encode a sentence showing each token with its offsets.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release
graft="$(swift build -c release --show-bin-path)/graft"
out="${GRAFT_DEMO_DIR:-graft-demo}"
mkdir -p "$out"

echo "== 1. Train a WordPiece tokenizer (8,000 tokens) on corpora/wiki-vital-sample.jsonl"
"$graft" tokenizer train --kind wordpiece --vocab-size 8000 --out "$out/tokenizer" corpora/wiki-vital-sample.jsonl
"$graft" tokenizer info "$out/tokenizer"

echo "== 2. Encode a sentence: tokens with [start, end) offsets into the original text"
sentence='Graft keeps offsets exact: naïve café, 東京, and "quotes" all map back.'
echo "$sentence" | "$graft" tokenizer encode --tokenizer "$out/tokenizer" --offsets
echo "$sentence" | "$graft" tokenizer encode --tokenizer "$out/tokenizer" --json
