#!/usr/bin/env bash
# A real S3-compatible server on 127.0.0.1: s3s-fs, which stores each bucket as a folder.
# The tests (tests/s3.rs) start their own from the installed binary; this script installs it
# and starts one by hand for trying skewer against object storage.
#
#   scripts/s3-server.sh install   install s3s-fs 0.14.1 if it is missing (0.17 needs a newer rustc)
#   scripts/s3-server.sh run DIR   serve DIR (each subfolder a bucket) on a free port until ^C,
#                                  with access key "skewer" and secret "skewer-secret"
set -euo pipefail

VERSION=0.14.1

installed() {
    command -v s3s-fs >/dev/null 2>&1 && s3s-fs --version 2>/dev/null | grep -q "$VERSION"
}

case "${1:-}" in
install)
    if installed; then
        echo "s3s-fs $VERSION: $(command -v s3s-fs)"
    else
        cargo install "s3s-fs@$VERSION" --features binary --locked
    fi
    ;;
run)
    dir="${2:?usage: scripts/s3-server.sh run DIR}"
    installed || { echo "s3s-fs $VERSION is not installed: run scripts/s3-server.sh install" >&2; exit 1; }
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat <<INFO
serving $dir on http://127.0.0.1:$port (a bucket is a folder: mkdir $dir/<bucket>); in another shell:
  export AWS_ACCESS_KEY_ID=skewer AWS_SECRET_ACCESS_KEY=skewer-secret AWS_ENDPOINT_URL=http://127.0.0.1:$port
  skewer run --input s3://<bucket>/dump/ --output s3://<bucket>/dataset
INFO
    exec s3s-fs --host 127.0.0.1 --port "$port" --access-key skewer --secret-key skewer-secret "$dir"
    ;;
*)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
