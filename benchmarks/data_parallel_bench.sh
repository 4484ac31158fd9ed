#!/usr/bin/env bash
# Data-parallel BERT-Mini pretraining on one machine: 1 process x 2 threads (accumulation 2)
# against mpirun -np 2 x 1 thread (accumulation 1), the same global batch (2 x 32 sequences of
# 128 tokens), alternated ROUNDS times. Prints each run's throughput line (tokens/s after the
# first update) and, for the 2-rank runs, the share of update time rank 0 waited for the
# gradient all-reduce. GRAFT_BUCKET_MB=1024 in the third configuration: no bucket is started
# before backward ends (no overlap).
#
#   benchmarks/data_parallel_bench.sh DB TOKENIZER [ROUNDS] [STEPS]
set -euo pipefail
db=$1; tok=$2; rounds=${3:-2}; steps=${4:-8}
graft=${GRAFT:-.build/release/graft}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(pretrain --db "$db" --tokenizer "$tok" --kind bert --preset mini --batch-size 32 --seq-len 128
        --steps "$steps" --eval-every 0 --eval-batches 1 --checkpoint-every 0 --warmup-steps 2)
mpi=(mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none --bind-to none -np 2)
echo "# $(date -u '+%F %T') UTC; $(uptime)"
for round in $(seq "$rounds"); do
    echo "## round $round"
    rm -rf "$work"/*
    echo "1 process x 2 threads, accumulation 2:"
    "$graft" "${common[@]}" --accumulation 2 --threads 2 --out "$work/one" 2>&1 | grep -E "throughput|parameters" || true
    echo "2 ranks x 1 thread, accumulation 1, a bucket per finished block (default):"
    "${mpi[@]}" "$graft" "${common[@]}" --accumulation 1 --threads 1 --out "$work/two" 2>&1 | grep -E "throughput|data-parallel" || true
    echo "2 ranks x 1 thread, accumulation 1, one bucket after backward (GRAFT_BUCKET_MB=1024):"
    "${mpi[@]}" -x GRAFT_BUCKET_MB=1024 "$graft" "${common[@]}" --accumulation 1 --threads 1 --out "$work/two-late" 2>&1 | grep -E "throughput|data-parallel" || true
    echo "# $(uptime)"
done
