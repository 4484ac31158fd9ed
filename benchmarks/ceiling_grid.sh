#!/usr/bin/env bash
# Each pretraining variant against the SGEMM ceiling, binaries alternated round by round
# (issue 11: "at least 80% of the SGEMM ceiling that graft bench engine measures").
#
#   benchmarks/ceiling_grid.sh ROUNDS STEPS "masked:2 masked:1 full:2 ..." GRAFT [GRAFT2 ...]
#
# Per round, per configuration VARIANT:THREADS, per binary: one
# `graft bench pretrain --variant VARIANT --threads THREADS --steps STEPS --warmup 2 --profile --json`.
# Prints one line per run: binary, variant, threads, OpenBLAS kernels, tokens/s, the SGEMM ceiling
# (median of the samples taken beside the updates), the aggregate (GEMM work over the whole
# update / ceiling), the paired median and range (each update against the ceiling sampled just
# before and after it), the GEMM rate against the ceiling, and the load average.
set -euo pipefail
rounds=$1 steps=$2 configs=$3
shift 3
printf '%-28s %-6s %2s %-10s %9s %8s %9s %16s %8s %5s\n' binary variant t kernels tokens/s ceiling aggregate "paired (range)" gemm load
for ((r = 1; r <= rounds; r++)); do
    for cfg in $configs; do
        variant=${cfg%%:*} threads=${cfg##*:}
        for bin in "$@"; do
            json=$("$bin" bench pretrain --variant "$variant" --threads "$threads" --steps "$steps" --warmup 2 --profile --json | tail -1)
            load=$(cut -d' ' -f1 /proc/loadavg)
            python3 - "$bin" "$variant" "$threads" "$load" "$json" <<'EOF'
import json, sys
bin, variant, threads, load, text = sys.argv[1:]
j = json.loads(text); p = j["profile"]
pct = lambda x: f"{x * 100:.1f}"
print(f"{bin[-28:]:<28} {variant:<6} {threads:>2} {j['openblas_core']:<10} {j['tokens_per_s']:>9.0f} "
      f"{p['sgemm_ceiling_gflops']:>8.1f} {pct(p['step_of_ceiling']):>8}% "
      f"{pct(p['update_of_ceiling_median']):>5}% ({pct(p['update_of_ceiling_min'])}-{pct(p['update_of_ceiling_max'])}) "
      f"{pct(p['gemm_of_ceiling']):>7}% {load:>5}", flush=True)
EOF
        done
    done
done
