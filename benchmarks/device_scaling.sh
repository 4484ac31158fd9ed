#!/usr/bin/env bash
# Issue 11's thread curve on a many-core machine: BERT-Mini / GPT pretraining tokens/s of Graft
# and PyTorch at 1, 2, 4, 8 and 16 threads, alternated in one run, then Graft's updates against
# the SGEMM ceiling at the widest counts. Made for the lent 16-core device (no Swift there, a
# PyTorch and transformers already installed, 15 minutes a session), in one call:
#
#   here:   scripts/make-device-bundle.sh            # .build-device/graft-bundle.tar.xz (ignored)
#   device: run(command: "bash benchmarks/device_scaling.sh", carry: [".build-device"], timeout_s: 560)
#
# Everything goes to $OUT (else /tmp/device-scaling) as it is measured, so a run stopped at its
# limit still returns what it finished: machine.txt, curve.log (one line per run), curve.json
# (when all runs finish), ceiling.txt. Settings: SCALING_THREADS ("1 2 4 8 16"), SCALING_VARIANTS
# ("masked gpt full"), SCALING_REPEAT (1: a second round of the 30 runs would not fit one 10-minute call), SCALING_STEPS (4), SCALING_CEILING ("masked:16 masked:8
# gpt:16"), GRAFT (a graft binary instead of the bundle, for trying this script anywhere).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/device-scaling}
mkdir -p "$out"
threads=${SCALING_THREADS:-1 2 4 8 16}
variants=${SCALING_VARIANTS:-masked gpt full}
repeat=${SCALING_REPEAT:-1}
steps=${SCALING_STEPS:-4}
ceiling=${SCALING_CEILING:-masked:16 masked:8 gpt:16}
if [ -z "${GRAFT:-}" ]; then
    bundle=.build-device/graft-bundle.tar.xz
    [ -f "$bundle" ] || { echo "no $bundle: run scripts/make-device-bundle.sh first and carry .build-device" >&2; exit 2; }
    dir=$(mktemp -d)
    tar -C "$dir" -xJf "$bundle" || exit 2
    GRAFT=$dir/graft/run-graft
    echo "bundle of commit $(cat "$dir/graft/COMMIT")" > "$out/machine.txt"
fi
{
    date -u; uname -a; nproc; lscpu; free -m; cat /proc/loadavg
    env | grep -E '^(OPENBLAS|OMP|MKL|GOTO)_' || true
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "threads", torch.get_num_threads()); print(torch.__config__.parallel_info())'
    "$GRAFT" bench engine --threads "1,${threads##* }" --repeats 3 --json
} >> "$out/machine.txt" 2>&1
echo "machine: $(grep -m1 'Model name' "$out/machine.txt")" >&2

# The curve: sides alternate within each repeat (torch_pretrain_bench's own alternation).
# shellcheck disable=SC2086
PYTHONUNBUFFERED=1 python3 benchmarks/torch_pretrain_bench.py --graft "$GRAFT" \
    --graft-args='bench pretrain --json --variant {variant} --threads {threads} --steps {steps} --warmup {warmup}' \
    --threads $threads --variants $variants --steps "$steps" --warmup 1 --repeat "$repeat" \
    --out "$out/curve.json" > "$out/curve.txt" 2> "$out/curve.log"
status=$?
grep -E '^\[' "$out/curve.log" >&2
sed -n '1,/^{/p' "$out/curve.txt" | grep -v '^{' >&2

# Graft's updates against the SGEMM ceiling at the widest counts (one round).
bash benchmarks/ceiling_grid.sh 1 6 "$ceiling" "$GRAFT" > "$out/ceiling.txt" 2>&1
cat "$out/ceiling.txt" >&2
exit $status
