#!/usr/bin/env bash
# Starts one skewer run as N processes on this machine (127.0.0.1), to try a multi-process
# run or to test one: writes a host file of N free ports, starts `skewer run … --hosts FILE
# --process I` for I in 0..N-1, and waits for all of them. Each process's output goes to
# <log dir>/process-I.out and .err; process 0's summary is printed at the end. Exits with
# process 0's status (the run's), or 1 if any other process failed.
#
#   scripts/cluster-local.sh N [skewer run options…]
#
#   scripts/cluster-local.sh 3 --input sample/ --output /tmp/dataset --reducers 6
#
# Environment: SKEWER (the binary; default: target/release/skewer under $CARGO_TARGET_DIR or
# the repository), SKEWER_LOGS (where the logs go; default: a new temporary folder).
set -euo pipefail

n="${1:?usage: scripts/cluster-local.sh N [skewer run options...]}"
shift
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a number of processes, got $n" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
skewer="${SKEWER:-${CARGO_TARGET_DIR:-$root/target}/release/skewer}"
[[ -x "$skewer" ]] || { echo "no skewer binary at $skewer: cargo build --release, or set SKEWER" >&2; exit 2; }
logs="${SKEWER_LOGS:-$(mktemp -d -t skewer-cluster-XXXXXX)}"
mkdir -p "$logs"

# N distinct free ports, held together while they are picked.
python3 - "$n" > "$logs/hosts.txt" <<'PY'
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print("# one skewer process a line, process 0 first")
for s in held:
    print(f"127.0.0.1:{s.getsockname()[1]}")
PY

pids=()
for ((i = 0; i < n; i++)); do
    "$skewer" run "$@" --hosts "$logs/hosts.txt" --process "$i" \
        > "$logs/process-$i.out" 2> "$logs/process-$i.err" &
    pids+=("$!")
done
# A ^C stops every process.
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM

status=0
others=0
for ((i = 0; i < n; i++)); do
    if wait "${pids[$i]}"; then :; else
        code=$?
        if ((i == 0)); then status=$code; else others=1; fi
        echo "process $i exited with status $code:" >&2
        sed 's/^/  /' "$logs/process-$i.err" >&2
    fi
done
cat "$logs/process-0.out"
echo "logs and the host file: $logs" >&2
if ((status == 0 && others == 1)); then status=1; fi
exit "$status"
