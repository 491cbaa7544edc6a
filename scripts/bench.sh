#!/usr/bin/env bash
# skewer against DuckDB and Polars (and Spark with --with-spark) on the same generated input,
# in one run, as one table. See scripts/bench/bench.py and BENCHMARKS.md.
#
#   scripts/bench.sh                       # 200,000 contacts x 1,280 properties, Parquet and NDJSON
#   scripts/bench.sh --scale 0.1           # a tenth of that
#   scripts/bench.sh --formats parquet --with-spark
#
# Installs the peers from PyPI into a venv under target/ on first use (Spark needs Java 17).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SKEWER_BENCH_VENV:-target/venv-bench}
want_spark=false
for a in "$@"; do [ "$a" = "--with-spark" ] && want_spark=true; done
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
"$venv/bin/python" -c 'import duckdb, polars, pyarrow' 2>/dev/null ||
    "$venv/bin/pip" install --quiet duckdb==2.0.0 polars==2.1.0 pyarrow
if $want_spark; then
    "$venv/bin/python" -c 'import pyspark' 2>/dev/null || "$venv/bin/pip" install --quiet pyspark==4.3.0
fi
# Peak RSS comes from /usr/bin/time -v (Debian's `time`) as well as from sampling.
if [ ! -x /usr/bin/time ]; then
    apt-get install -y time >/dev/null 2>&1 ||
        echo "note: /usr/bin/time is missing (Debian package 'time'); peak RSS is sampled only" >&2
fi
cargo build --release --quiet
exec "$venv/bin/python" scripts/bench/bench.py "$@"
