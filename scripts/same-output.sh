#!/usr/bin/env bash
# Checks that two skewer binaries write byte-identical datasets from the same inputs: the
# proof a refactor changed no behaviour. Data files are compared by path (with each run's
# id taken out of the name) and by content; the manifests' counts and file lists likewise.
#
#   scripts/same-output.sh OLD_BINARY NEW_BINARY [SCALE]
#   S3=1 scripts/same-output.sh OLD_BINARY NEW_BINARY [SCALE]   # inputs and datasets in S3
#
# Inputs: `skewer gen` (with OLD_BINARY) of 20,000 x SCALE contacts x 1,280 properties as
# nested Parquet (STRUCT and MAP forms) and as NDJSON (plain and gzip), each run once per
# binary with the default options and once with a small --memory-limit (spilling). With S3=1
# the inputs are read from and the datasets written to a local S3-compatible server (s3s-fs,
# see scripts/s3-server.sh install), whose bucket folder is then compared the same way.
set -euo pipefail
old=${1:?usage: same-output.sh OLD NEW [SCALE]}
new=${2:?usage: same-output.sh OLD NEW [SCALE]}
scale=${3:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
server=
if [[ "${S3:-}" == 1 ]]; then
    command -v s3s-fs >/dev/null || { echo "S3=1 needs s3s-fs: scripts/s3-server.sh install" >&2; exit 1; }
    mkdir -p "$work/s3/lake"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    s3s-fs --host 127.0.0.1 --port "$port" --access-key skewer --secret-key skewer-secret "$work/s3" \
        >"$work/s3.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
    export AWS_ACCESS_KEY_ID=skewer AWS_SECRET_ACCESS_KEY=skewer-secret
    export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
    sleep 1
fi
objects=$(python3 -c "print(max(100, int(20000 * $scale)))")

"$old" gen --objects "$objects" --properties 1280 --format parquet --files 3 --out "$work/in/parquet" >/dev/null
"$old" gen --objects "$objects" --properties 300 --format parquet --parquet-map --files 2 --seed 2 --out "$work/in/map" >/dev/null
"$old" gen --objects "$objects" --properties 1280 --files 3 --seed 3 --out "$work/in/ndjson" >/dev/null
"$old" gen --objects "$objects" --properties 1280 --files 2 --gzip --seed 4 --out "$work/in/gzip" >/dev/null

if [[ -n "$server" ]]; then
    cp -r "$work/in" "$work/s3/lake/in"
fi
status=0
for input in parquet map ndjson gzip; do
    # S3 inputs get more mapper threads (they wait on requests), which need a little more.
    small=300MiB
    [[ -n "$server" ]] && small=320MiB
    for options in "" "--memory-limit $small"; do
        for bin in old new; do
            if [[ -n "$server" ]]; then
                from=s3://lake/in/$input to=s3://lake/out/$bin
            else
                from=$work/in/$input to=$work/out/$bin
            fi
            # shellcheck disable=SC2086
            "${!bin}" run --input "$from" --output "$to" --json $options >"$work/$bin.json"
        done
        root=$work/out
        [[ -n "$server" ]] && root=$work/s3/lake/out
        if python3 - "$work" "$root" <<'PY'
import hashlib, json, os, sys
work, out = sys.argv[1], sys.argv[2]
def dataset(bin):
    report = json.load(open(f"{work}/{bin}.json"))
    run = report["manifest"]["run_id"]
    files = {}
    root = f"{out}/{bin}"
    for d, _, names in os.walk(root):
        if "/_skewer" in d + "/":
            continue
        for n in names:
            if n.startswith("."):
                continue  # an object store's own bookkeeping (s3s-fs metadata)
            rel = os.path.relpath(os.path.join(d, n), root).replace(run, "RUN")
            files[rel] = hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest()
    m = report["manifest"]
    listed = sorted((f["path"].replace(run, "RUN"), f["rows"], f["bytes"]) for f in m["files"])
    return files, m["counts"], listed
a, b = dataset("old"), dataset("new")
if a[0] != b[0]:
    diff = sorted(set(a[0].items()) ^ set(b[0].items()))[:6]
    sys.exit(f"data files differ: {diff}")
counts_a = {k: v for k, v in a[1].items() if k in b[1]}
counts_b = {k: v for k, v in b[1].items() if k in a[1]}
if counts_a != counts_b or a[2] != b[2]:
    sys.exit(f"manifests differ: {a[1]} vs {b[1]}")
print(f"  {len(a[0])} data files identical")
PY
        then echo "same: $input ${options:-(defaults)}"
        else echo "DIFFERENT: $input ${options:-(defaults)}"; status=1
        fi
        rm -rf "$work/out" "$work/s3/lake/out"
    done
done
exit $status
