#!/usr/bin/env bash
# Runs skewer under a memory limit on inputs whose exploded rows are many times that limit and
# checks, with /usr/bin/time -v, that peak RSS stays within the limit plus a margin, and that
# the output holds exactly the generator's rows. Exits 1 if any case fails.
#
#   scripts/memory-check.sh                      # 256MiB limit, full-size inputs (~10 GiB disk)
#   LIMIT=512MiB SCALE=0.5 scripts/memory-check.sh
#   SCALE=0.05 scripts/memory-check.sh           # what .ci/run does: a few minutes on 2 cores
#   CASES="huge-line big-values" scripts/memory-check.sh   # only these cases
#
# Cases (SCALE multiplies the contacts):
#   parquet-zipf   nested Parquet, 200,000 contacts x 1,280 properties (28 M rows)
#   parquet-hot60  the same with one property holding 60 % of the rows
#   ndjson-zipf    NDJSON, 120,000 contacts (17 M rows, 2.2 GiB)
# and two hostile inputs, not scaled (their sizes are against fixed limits, not the memory one):
#   huge-line      gzipped NDJSON with one 300 MiB line (HUGE_LINE_MIB) among short ones; a
#                  line over 64 MiB must be rejected unread: 1 record rejected, the rest written
#   big-values     NDJSON with 50 (BIG_VALUES) values of 10 MiB (BIG_VALUE_MIB) among short
#                  records; a value over 1 MiB rejects its record: 50 rejected, the rest written
# Both run with --max-bad-records 100% and must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${LIMIT:-256MiB}
scale=${SCALE:-1}
# What the limit does not cover: the binary, its thread stacks and the allocator's slack.
margin_mib=${MARGIN_MIB:-64}
cases=${CASES:-parquet-zipf parquet-hot60 ndjson-zipf huge-line big-values}
huge_line_mib=${HUGE_LINE_MIB:-300}
big_values=${BIG_VALUES:-50}
big_value_mib=${BIG_VALUE_MIB:-10}

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

wanted() { [[ " $cases " == *" $1 "* ]]; }

status=0
failed=()
started=$SECONDS

# measure NAME INPUT [skewer run options…]: runs skewer under /usr/bin/time; sets rc, rss_kib, wall.
measure() {
    local name=$1 input=$2
    shift 2
    rc=0
    /usr/bin/time -v -o "$work/$name.time" "$skewer" run --input "$input" --output "$work/$name.dataset" \
        --memory-limit "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time")
}

# report NAME DETAIL PROBLEM…: one summary line for the case; no problem means ok.
report() {
    local name=$1 detail=$2
    shift 2
    local problems=("$@")
    if [ "${rss_kib:-0}" -gt "$allowed_kib" ]; then problems+=("OVER LIMIT"); fi
    local verdict=ok
    if [ ${#problems[@]} -gt 0 ]; then
        verdict="FAIL: $(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g')"
        status=1
        failed+=("$name")
    fi
    printf '%-14s peak RSS %5d MiB of %d allowed (limit %s + %d MiB margin)  wall %s  %s  %s\n' \
        "$name" $(( ${rss_kib:-0} / 1024 )) $(( allowed_kib / 1024 )) "$limit" "$margin_mib" "$wall" \
        "$detail" "$verdict"
    if [ "$rc" -ne 0 ]; then sed 's/^/    skewer: /' "$work/$name.err" | tail -5; fi
    rm -rf "$work/$name.dataset"
}

# A generated dump: skewer must write exactly the generator's rows.
check_generated() {
    local name=$1 input=$2
    measure "$name" "$input"
    local problems=()
    if [ "$rc" -ne 0 ]; then
        problems+=("exit $rc")
    elif ! "$skewer" checksum "$work/$name.dataset" --expected "$input" >"$work/$name.checksum" 2>&1; then
        problems+=("WRONG OUTPUT")
    fi
    local spilled
    spilled=$(grep -o 'spilled [^ ]* [^ ]*' "$work/$name.out" || echo "spilled nothing")
    report "$name" "$spilled" "${problems[@]}"
}

# A hostile input: skewer must exit 0, having rejected REJECTED records and written ROWS rows.
check_hostile() {
    local name=$1 input=$2 want_rejected=$3 want_rows=$4
    measure "$name" "$input" --max-bad-records 100% --json
    local problems=() counts="no counts"
    if [ "$rc" -ne 0 ]; then
        problems+=("exit $rc")
    else
        local got read_ rejected rows
        got=$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["manifest"]["counts"]
print(c["records_read"], c["records_rejected"], c["rows_written"])' "$work/$name.out")
        read -r read_ rejected rows <<<"$got"
        counts="$read_ records, $rejected rejected, $rows rows written"
        if [ "$rejected" != "$want_rejected" ]; then problems+=("$rejected rejected, expected $want_rejected"); fi
        if [ "$rows" != "$want_rows" ]; then problems+=("$rows rows written, expected $want_rows"); fi
    fi
    report "$name" "$counts" "${problems[@]}"
}

if wanted parquet-zipf; then
    "$skewer" gen --objects "$objects" --properties 1280 --format parquet --files 8 --out "$work/zipf" >/dev/null
    check_generated parquet-zipf "$work/zipf"
    rm -rf "$work/zipf"
fi
if wanted parquet-hot60; then
    "$skewer" gen --objects "$objects" --properties 1280 --format parquet --files 8 --hot-share 0.6 --out "$work/hot" >/dev/null
    check_generated parquet-hot60 "$work/hot"
    rm -rf "$work/hot"
fi
if wanted ndjson-zipf; then
    "$skewer" gen --objects "$nd_objects" --properties 1280 --files 4 --out "$work/ndjson" >/dev/null
    check_generated ndjson-zipf "$work/ndjson"
    rm -rf "$work/ndjson"
fi

# The hostile inputs are written by streaming writes: no big string is ever held in memory.
# Each has a few short records (one version each) around the big ones, so the file is
# unambiguously NDJSON from its first line and the run has rows to write.
if wanted huge-line; then
    mkdir -p "$work/huge-line"
    python3 - "$huge_line_mib" <<'PY' | gzip -1 >"$work/huge-line/contacts.ndjson.gz"
import json, sys
mib = int(sys.argv[1])
out = sys.stdout.buffer
def short(vid):
    out.write((json.dumps({"vid": vid, "properties": {"firstname": {"versions": [
        {"value": f"name {vid}", "timestamp": 1_700_000_000_000 + vid}]}}}) + "\n").encode())
short(1)
out.write(b'{"vid":2,"properties":{"notes":{"versions":[{"value":"')
chunk = b"x" * (1 << 20)
for _ in range(mib):
    out.write(chunk)
out.write(b'","timestamp":1}]}}}\n')
for vid in range(3, 7):
    short(vid)
PY
    check_hostile huge-line "$work/huge-line" 1 5
    rm -rf "$work/huge-line"
fi
if wanted big-values; then
    mkdir -p "$work/big-values"
    python3 - "$big_values" "$big_value_mib" >"$work/big-values/contacts.ndjson" <<'PY'
import json, sys
count, mib = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
chunk = b"y" * (1 << 20)
shorts = 0
for i in range(count):
    out.write(b'{"vid":%d,"properties":{"notes":{"versions":[{"value":"' % (1000 + i))
    for _ in range(mib):
        out.write(chunk)
    out.write(b'","timestamp":%d}]}}}\n' % (1_700_000_000_000 + i))
    if i % 10 == 9:
        shorts += 1
        out.write((json.dumps({"vid": shorts, "properties": {"firstname": {"versions": [
            {"value": f"name {shorts}", "timestamp": 1_700_000_000_000}]}}}) + "\n").encode())
PY
    check_hostile big-values "$work/big-values" "$big_values" $(( big_values / 10 ))
    rm -rf "$work/big-values"
fi

if [ $status -eq 0 ]; then
    echo "memory-check: all cases ok (limit $limit, SCALE=$scale, $(( SECONDS - started )) s)"
else
    echo "memory-check: FAILED: ${failed[*]} (limit $limit, SCALE=$scale, $(( SECONDS - started )) s)"
fi
exit $status
