#!/usr/bin/env bash
# A night's increment merged into the stored dataset: skewer merge and upsert against a full
# rebuild and the same upsert in DuckDB and Polars, interleaved. See
# scripts/bench/bench_merge.py and BENCHMARKS.md.
#
#   scripts/bench-merge.sh                          # 200,000 contacts, a 1 % increment
#   scripts/bench-merge.sh --objects 20000 --reps 1 # a quick look
#
# The binary: $SKEWER_BIN, else $CARGO_TARGET_DIR/release/skewer, else target/release/skewer.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SKEWER_BENCH_VENV:-target/venv-bench}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
"$venv/bin/python" -c 'import duckdb, polars, pyarrow, deltalake' 2>/dev/null ||
    "$venv/bin/pip" install --quiet duckdb==2.0.0 polars==2.1.0 pyarrow deltalake==1.6.6
if [ ! -x /usr/bin/time ]; then
    apt-get install -y time >/dev/null 2>&1 ||
        echo "note: /usr/bin/time is missing (Debian package 'time'); peak RSS is sampled only" >&2
fi
[ -n "${SKEWER_BIN:-}" ] || cargo build --release --quiet
exec "$venv/bin/python" scripts/bench/bench_merge.py "$@"
