#!/usr/bin/env bash
# Zero-shot and few-shot sentiment with a sentence-embedding model (issue 10), no training:
# all-MiniLM-L6-v2 scored on rt-snippets dev with `graft evaluate --zero-shot` (label
# descriptions) and `--examples` (K examples per class from the training set, the first K of
# each label in file order, plus the descriptions).
#
# Usage: benchmarks/zero_few_shot.sh [K] [DEV_LIMIT]
#   K          few-shot examples per class (default 16)
#   DEV_LIMIT  score only the first N dev examples (default: all 1,057; a quick check: 20)
# Environment: GRAFT (default .build/release/graft), GRAFT_DATA_DIR (default ../shared/data),
#   THREADS (default 1), WORK (default a temporary directory), TEMPERATURE (default 0.05),
#   SEED (K examples per class drawn at random with this seed instead of the first K),
#   SETTINGS (default "zero-shot few-shot few-shot+descriptions").
# Prints one JSON line per setting: {"setting", "k", "accuracy", "macro_f1", "examples", "seconds"}.
set -euo pipefail
K=${1:-16}
LIMIT=${2:-}
GRAFT=${GRAFT:-.build/release/graft}
DATA=${GRAFT_DATA_DIR:-../shared/data}
THREADS=${THREADS:-1}
TEMPERATURE=${TEMPERATURE:-0.05}
WORK=${WORK:-$(mktemp -d)}
LABELS="pos=a great, enjoyable, moving film;neg=a dull, boring, bad film"

MODEL="$WORK/minilm"
[ -d "$MODEL" ] || "$GRAFT" import "$DATA/models/all-MiniLM-L6-v2" --out "$MODEL" >&2
DEV="$DATA/sentiment/rt-snippets/dev.tsv"
if [ -n "$LIMIT" ]; then head -n "$((LIMIT + 1))" "$DEV" > "$WORK/dev.tsv"; DEV="$WORK/dev.tsv"; fi
# The first K training examples of each label, in file order (deterministic), or with SEED a
# seeded random draw of K per label (the file shuffled by awk's rand(), then the first K).
TRAIN="$DATA/sentiment/rt-snippets/train.tsv"
if [ -n "${SEED:-}" ]; then
    awk -F'\t' -v s="$SEED" 'BEGIN { srand(s) } NR > 1 { printf "%.12f\t%s\n", rand(), $0 }' "$TRAIN" | sort -k1,1 | cut -f2- \
        | awk -F'\t' -v k="$K" 'n[$1] < k { n[$1]++; print }' > "$WORK/shots.tsv"
else
    awk -F'\t' -v k="$K" 'NR > 1 && n[$1] < k { n[$1]++; print }' "$TRAIN" > "$WORK/shots.tsv"
fi
SETTINGS=${SETTINGS:-zero-shot few-shot few-shot+descriptions}

run() {   # setting, extra args...
    local setting=$1; shift
    "$GRAFT" evaluate --model "$MODEL" --data "$DEV" --threads "$THREADS" --temperature "$TEMPERATURE" --json "$@" 2>/dev/null \
        | sed "s/^{/{\"setting\":\"$setting\",\"k\":$([ "$setting" = zero-shot ] && echo 0 || echo "$K"),\"seed\":${SEED:-null},/"
}
for setting in $SETTINGS; do
    case $setting in
        zero-shot) run zero-shot --zero-shot --labels "$LABELS" ;;
        few-shot) run few-shot --examples "$WORK/shots.tsv" --labels "pos;neg" ;;
        few-shot+descriptions) run few-shot+descriptions --examples "$WORK/shots.tsv" --labels "$LABELS" ;;
        *) echo "unknown setting $setting (zero-shot, few-shot, few-shot+descriptions)" >&2; exit 2 ;;
    esac
done
