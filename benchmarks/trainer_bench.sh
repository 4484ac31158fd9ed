#!/usr/bin/env bash
# Times Graft's trainers and HuggingFace tokenizers' on the same machine, same corpus.
#   bash benchmarks/trainer_bench.sh [CORPUS_FILE ...]
# Needs: Swift 6 toolchain, python3 with tokenizers==0.23.3 (pip install tokenizers==0.23.3),
# the shared data at $GRAFT_DATA_DIR or ../shared/data. Default corpus: the wiki corpus.
# Graft's figures come from the release-mode timing harness in
# Tests/GraftTokenizersTests/TrainerTests.swift (suite TrainerBenchmark, enabled by
# GRAFT_TRAINER_BENCH=1); HF's from benchmarks/hf_train.py. Both report the minimum of
# REPEATS runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${GRAFT_DATA_DIR:-$(cd .. && pwd)/shared/data}"
if [ "$#" -eq 0 ]; then set -- "$DATA/corpora/wiki-vital-en.jsonl"; fi
REPEATS="${REPEATS:-3}"
corpus_csv="$(IFS=,; echo "$*")"
echo "== machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
swift build -c release --build-tests -Xswiftc -enable-testing 2>&1 | tail -1
echo "== Graft (release)"
GRAFT_TRAINER_BENCH=1 GRAFT_TRAINER_BENCH_REPEATS="$REPEATS" GRAFT_TRAINER_BENCH_CORPUS="$corpus_csv" \
  swift test -c release -Xswiftc -enable-testing --skip-build --filter TrainerBenchmark 2>&1 \
  | grep -E "^(corpus|count words|wordpiece|bytelevel)"
echo "== HuggingFace tokenizers"
python3 benchmarks/hf_train.py --repeat "$REPEATS" --corpus "$@" | sed -n '/summary/,$p'
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
