#!/usr/bin/env python3
"""What counting tonight's input costs a run (issue 18): the plan phase against the wall time.

Every run counts its input before reading it (Parquet footers, JSON probes) and checks the
history against the counts. This runs the benchmark's dumps (200,000 contacts x 1,280
properties by default, generated with `skewer gen` as scripts/bench/bench.py does) into one
dataset per format: a first run writes the history, then each timed run plans from it and
from tonight's counts, as a nightly run does. The plan phase (finding the inputs, cutting
splits, reading the history, counting, planning) bounds the count's cost from above; the
run's log gives the count alone (`count_ms`).

    CARGO_TARGET_DIR=/work/target-rel python3 scripts/bench-sample-cost.py --work /tmp/bench-full

The binary is found as the other scripts find it: $CARGO_TARGET_DIR/release/skewer, else
target/release/skewer.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKEWER = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "skewer"


def run(dump: Path, lake: Path) -> dict:
    started = time.monotonic()
    out = subprocess.run([str(SKEWER), "run", "--input", str(dump), "--output", str(lake), "--json"],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "RUST_LOG": "skewer=info"})
    report = json.loads(out.stdout)
    report["measured_wall_s"] = time.monotonic() - started
    # The count alone, from the run's log line "counted tonight's input … count_ms=N".
    found = re.search(r"count_ms=(\d+)", out.stderr)
    report["count_s"] = int(found.group(1)) / 1e3 if found else float("nan")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="where dumps and datasets go")
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--formats", default="ndjson,parquet")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not SKEWER.exists():
        raise SystemExit(f"{SKEWER} is missing: cargo build --release")
    work = Path(args.work or (Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "bench"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {args.objects:,} objects x 1,280 properties; {SKEWER}; {args.repeat} timed runs "
          "per format, interleaved, each planned from the history of the runs before", flush=True)

    formats = args.formats.split(",")
    dumps, lakes = {}, {}
    for fmt in formats:
        dump = work / f"dump-{fmt}-{args.objects}"
        if not (dump / "_expected.json").exists():
            shutil.rmtree(dump, ignore_errors=True)
            files = "8" if fmt == "parquet" else "4"
            subprocess.run([str(SKEWER), "gen", "--objects", str(args.objects), "--properties",
                            "1280", "--format", fmt, "--files", files, "--out", str(dump)],
                           check=True, stdout=subprocess.DEVNULL)
        lake = work / f"sample-cost-{fmt}"
        shutil.rmtree(lake, ignore_errors=True)
        run(dump, lake)  # writes the history the timed runs plan from
        dumps[fmt], lakes[fmt] = dump, lake

    results = {fmt: [] for fmt in formats}
    for _ in range(args.repeat):
        for fmt in formats:
            results[fmt].append(run(dumps[fmt], lakes[fmt]))

    print("\n| input | count s, median (min-max) | plan phase s | wall s, median "
          "| count's share of wall | plan phase's share | counted | drifted |")
    print("|---|---|---|---|---|---|---|---|")
    for fmt in formats:
        rs = results[fmt]
        plan = [r["manifest"]["timings"]["plan_ms"] / 1e3 for r in rs]
        count = [r["count_s"] for r in rs]
        wall = [r["wall_s"] for r in rs]
        drift = rs[-1]["drift"] or {}
        counted = ("exact" if drift.get("exact") else
                   f"{drift.get('counted_rows', 0):,} rows sampled")
        share = lambda xs: 100 * statistics.median(x / w for x, w in zip(xs, wall))
        print(f"| {fmt} | {statistics.median(count):.2f} ({min(count):.2f}-{max(count):.2f}) "
              f"| {statistics.median(plan):.2f} | {statistics.median(wall):.2f} "
              f"| {share(count):.1f} % | {share(plan):.1f} % "
              f"| {counted} | {len(drift.get('drifted', []))} |")


if __name__ == "__main__":
    main()
