#!/usr/bin/env bash
# Renders skewer's pictures to PNG to look at them: a plan from a sample history, and the
# latest run of a small generated dataset (actual beside predicted loads). Checks that each
# SVG parses as XML and has one bar per reducer. Needs rsvg-convert (Debian librsvg2-bin;
# installed with apt-get when missing and possible).
#
#   scripts/render-svg.sh [OUT_DIR]      (default: target/pictures)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/pictures}"
mkdir -p "$out"

if ! command -v rsvg-convert >/dev/null 2>&1; then
    apt-get install -y librsvg2-bin >/dev/null
fi
cargo build --release --quiet
skewer=${CARGO_TARGET_DIR:-target}/release/skewer

$skewer plan --history history/samples/contacts-zipf --reducers 16 --svg "$out/plan.svg" --html "$out/plan.html" >/dev/null
rm -rf "$out/dump" "$out/dataset"
$skewer gen --objects 5000 --out "$out/dump" >/dev/null
$skewer run --input "$out/dump" --output "$out/dataset" --reducers 6 >/dev/null
$skewer inspect "$out/dataset" --run latest --svg "$out/run.svg" >/dev/null

for pair in plan:16 run:6; do
    name="${pair%%:*}"
    want="${pair##*:}"
    python3 - "$out/$name.svg" "$want" <<'PY'
import sys, xml.etree.ElementTree as ET
path, want = sys.argv[1], int(sys.argv[2])
bars = [g for g in ET.parse(path).iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "reducer"]
assert len(bars) == want, f"{path}: {len(bars)} reducer bars, expected {want}"
print(f"{path}: well-formed, {len(bars)} reducer bars")
PY
    rsvg-convert "$out/$name.svg" -o "$out/$name.png"
    echo "rendered $out/$name.png"
done
