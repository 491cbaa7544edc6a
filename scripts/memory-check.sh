#!/usr/bin/env bash
# Runs skewer under a memory limit on inputs whose exploded rows are many times that limit and
# checks, with /usr/bin/time -v, that peak RSS stays within the limit plus a margin, and that
# the output holds exactly the generator's rows.
#
#   scripts/memory-check.sh                      # 256MiB limit, full-size inputs (~10 GiB disk)
#   LIMIT=512MiB SCALE=0.5 scripts/memory-check.sh
#
# Cases: nested Parquet, 200,000 contacts x 1,280 properties (28 M rows); the same with one
# property holding 60 % of the rows; NDJSON, 120,000 contacts (17 M rows, 2.2 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${LIMIT:-256MiB}
scale=${SCALE:-1}
# What the limit does not cover: the binary, its thread stacks and the allocator's slack.
margin_mib=${MARGIN_MIB:-64}

if [ ! -x /usr/bin/time ]; then
    apt-get install -y time >/dev/null 2>&1 || { echo "needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
fi
cargo build --release --quiet
skewer=${CARGO_TARGET_DIR:-target}/release/skewer
work=${WORK:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT

limit_bytes=$(python3 -c "
import re,sys; m=re.fullmatch(r'([0-9.]+)\s*([KMGT]i?B?|B)?', sys.argv[1], re.I)
n=float(m.group(1)); u=(m.group(2) or 'B').upper().rstrip('B').rstrip('I')
print(int(n * 1024 ** ' KMGT'.index(u or ' ')))" "$limit")
allowed_kib=$(( limit_bytes / 1024 + margin_mib * 1024 ))
objects=$(python3 -c "print(int(200000 * $scale))")
nd_objects=$(python3 -c "print(int(120000 * $scale))")

status=0
check() {
    local name=$1 input=$2
    local out="$work/$name.dataset"
    /usr/bin/time -v "$skewer" run --input "$input" --output "$out" --memory-limit "$limit" \
        >"$work/$name.summary" 2>"$work/$name.time"
    local rss_kib wall
    rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time")
    local spilled
    spilled=$(grep -o 'spilled [^ ]* [^ ]*' "$work/$name.summary" || echo "spilled nothing")
    local verdict=ok
    if ! "$skewer" checksum "$out" --expected "$input" >/dev/null; then verdict="WRONG OUTPUT"; status=1; fi
    if [ "$rss_kib" -gt "$allowed_kib" ]; then verdict="OVER LIMIT"; status=1; fi
    printf '%-14s peak RSS %5d MiB (limit %s + %d MiB margin)  wall %s  %s  %s\n' \
        "$name" $((rss_kib / 1024)) "$limit" "$margin_mib" "$wall" "$spilled" "$verdict"
    rm -rf "$out"
}

"$skewer" gen --objects "$objects" --properties 1280 --format parquet --files 8 --out "$work/zipf" >/dev/null
check parquet-zipf "$work/zipf"
rm -rf "$work/zipf"
"$skewer" gen --objects "$objects" --properties 1280 --format parquet --files 8 --hot-share 0.6 --out "$work/hot" >/dev/null
check parquet-hot60 "$work/hot"
rm -rf "$work/hot"
"$skewer" gen --objects "$nd_objects" --properties 1280 --files 4 --out "$work/ndjson" >/dev/null
check ndjson-zipf "$work/ndjson"
exit $status
