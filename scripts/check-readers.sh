#!/usr/bin/env bash
# Reads a skewer dataset back with DuckDB, pyarrow and Polars (Hive partitioning) and checks that
# all three see every row, the output schema's types (ARCHITECTURE.md), every property name unescaped, and sorted files.
#
#   scripts/check-readers.sh            # generates a dump, runs skewer, checks
#   scripts/check-readers.sh DATASET    # checks an existing dataset
#
# Installs duckdb, pyarrow and polars from PyPI into a venv under target/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SKEWER_VENV:-target/venv-readers}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb, pyarrow, polars' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet duckdb pyarrow polars
fi

if [ $# -ge 1 ]; then
    exec "$venv/bin/python" scripts/check_readers.py "$1"
fi

cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${CARGO_TARGET_DIR:-target}/release/skewer" gen --objects 3000 --properties 300 --files 3 --out "$work/in" >/dev/null
# Property names a folder cannot hold as they are: they must come back unescaped.
python3 - "$work/in/names.ndjson" <<'PY'
import json, sys
names = ["a/b", "x=y", "..", "50%", "ünïcødé 🚀", "q?#*", "tab\there", "colon:name", "NULL", "null", "%5F"]
with open(sys.argv[1], "w") as f:
    for i, name in enumerate(names):
        for o in range(5):
            f.write(json.dumps({"vid": 9_000_000_000 + o, "properties": {name: {"versions": [
                {"value": f"v{i}", "timestamp": 1_700_000_000_000 + o}]}}}) + "\n")
PY
"${CARGO_TARGET_DIR:-target}/release/skewer" run --input "$work/in" --output "$work/dataset" >/dev/null
"$venv/bin/python" scripts/check_readers.py "$work/dataset"
