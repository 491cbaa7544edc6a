#!/usr/bin/env bash
# skewer's scaling series: the same job at 1x, 3x and 10x the default size (200,000 contacts x
# 1,280 properties, nested Parquet), each under --memory-limit 1GiB, one table per size.
# Time should grow linearly with the rows and peak memory stay flat (BENCHMARKS.md).
#
#   scripts/scaling.sh                 # scales 1 3 10 (10x: ~5 GiB input, ~8 GiB spill)
#   SCALES="1 2" LIMIT=512MiB scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=${WORK:-target/bench}
for scale in ${SCALES:-1 3 10}; do
    scripts/bench.sh --formats "${FORMATS:-parquet}" --scale "$scale" --peers "" \
        --work "$work" --skewer-args "--memory-limit ${LIMIT:-1GiB}"
done
