#!/usr/bin/env bash
# skewer from and to S3 against the same run on local disk, in one session: the default
# benchmark dump (nested Parquet, 200,000 contacts) is served by a local s3s-fs (which shares
# the machine's cores, so remote figures include the server's own work).
#
#   scripts/bench-s3.sh [DUMP_DIR]     (default: generated into target/bench-s3/dump)
set -euo pipefail
cd "$(dirname "$0")/.."
work=target/bench-s3
mkdir -p "$work"
scripts/s3-server.sh install >/dev/null
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# $SKEWER_BIN: another binary to measure (an A/B against an older build), as bench.py takes.
if [ -n "${SKEWER_BIN:-}" ]; then
    skewer=$SKEWER_BIN
else
    cargo build --release --quiet
    skewer=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/skewer
fi

dump="${1:-$work/dump}"
if [ ! -d "$dump" ]; then
    "$skewer" gen --objects 200000 --format parquet --files 8 --out "$dump" >/dev/null
fi
root=$(mktemp -d "$work/s3-XXXXXX")
mkdir -p "$root/bench"
cp -r "$dump" "$root/bench/dump"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$root" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$root" "$work/local"' EXIT
sleep 1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_ENDPOINT_URL=http://127.0.0.1:$port

measure() {
    local name=$1; shift
    /usr/bin/time -v "$@" -q >"$work/$name.out" 2>"$work/$name.time"
    local wall rss phases
    wall=$(awk -F': ' '/Elapsed/ {print $2}' "$work/$name.time")
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f MiB", $2/1024}' "$work/$name.time")
    phases=$(grep '^phases' "$work/$name.out" | sed 's/^phases *//')
    printf '| %-22s | %8s | %8s | %s |\n' "$name" "$wall" "$rss" "$phases"
}

echo "| run | wall | peak RSS | phases |"
echo "|---|---|---|---|"
rm -rf "$work/local"
measure "local → local" "$skewer" run -i "$dump" -o "$work/local"
measure "s3 → s3 (first run)" "$skewer" run -i s3://bench/dump -o s3://bench/lake
measure "s3 → s3 (replacing)" "$skewer" run -i s3://bench/dump -o s3://bench/lake
"$skewer" checksum "$root/bench/lake" --expected "$dump" | tail -1
"$skewer" inspect s3://bench/lake --top 0 >/dev/null && echo "inspect s3://bench/lake: every check passes"
