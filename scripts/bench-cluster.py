#!/usr/bin/env python3
"""The cost of running one plan on several processes (`run --hosts`), on this machine.

Runs the same dump, plan and reducer count three ways, interleaved (A C B, A C B, ...):

  A  one process, two threads, batches over channels (the usual run)
  C  one process, two threads, batches through timely's exchange in-process
     (--timely-workers 2): timely's own cost, no serialization
  B  two processes of one thread each on 127.0.0.1 (--hosts): what several machines do,
     the batches that cross processes serialized and sent over loopback TCP

and reports medians and spread of wall time, CPU time, peak RSS (largest process), rows/s
per core, and the bytes that went over loopback per row (from /proc/net/dev: the exchange,
plus the small control messages). Checks that A and B wrote the same bytes. Then
extrapolates, from these measured figures, what N machines would take for Plumbee's daily
volume (166 GB of compressed events).

  scripts/bench-cluster.py [--objects 200000] [--format parquet] [--repeats 3] [--reducers 8]

The binary: $SKEWER, else release/skewer under $CARGO_TARGET_DIR (or target/), built first.
"""

import argparse
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def binary():
    if os.environ.get("SKEWER"):
        return Path(os.environ["SKEWER"])
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "skewer"


def lo_bytes():
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[8])  # transmitted bytes
    return 0


def free_ports(n):
    held = [socket.socket() for _ in range(n)]
    for s in held:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def digest(dataset):
    """Each data file's bytes by its path with the run id taken out."""
    out = {}
    for f in sorted(Path(dataset).rglob("*.parquet")):
        rel = f.relative_to(dataset).as_posix()
        if rel.startswith("_skewer"):
            continue
        name = rel.split("/")[-1]
        key = rel.rsplit("/", 1)[0] + "/" + name.split("-r", 1)[-1]
        out[key] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run(cmds, scratch):
    """Starts every command at once; waits; gives wall seconds, CPU seconds of all of them,
    the largest process's peak RSS (MiB, from GNU time), loopback bytes sent and process 0's
    stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sent = lo_bytes()
    rss_files = [Path(scratch) / f"rss-{i}" for i in range(len(cmds))]
    t0 = time.monotonic()
    procs = [subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss, *c],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c, rss in zip(cmds, rss_files)]
    outs = [p.communicate() for p in procs]
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"a run failed ({p.returncode}): {' '.join(map(str, p.args))}\n{err.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = max(int(f.read_text().split()[-1]) for f in rss_files) / 1024
    return wall, cpu, rss, lo_bytes() - sent, outs[0][0].decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--format", default="parquet", choices=["parquet", "ndjson"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reducers", type=int, default=8)
    args = ap.parse_args()

    skewer = binary()
    work = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "bench-cluster"
    work.mkdir(parents=True, exist_ok=True)
    dump = work / f"dump-{args.format}-{args.objects}"
    if not dump.exists():
        subprocess.run([skewer, "gen", "--objects", str(args.objects), "--format", args.format,
                        "--files", "8", "--out", dump], check=True, stdout=subprocess.DEVNULL)
    input_bytes = sum(f.stat().st_size for f in dump.iterdir() if not f.name.startswith("_"))
    version = subprocess.run([skewer, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; {dump.name}: {input_bytes / 2**20:.0f} MiB; {args.reducers} reducers; "
          f"{os.cpu_count()} cores; median of {args.repeats}, interleaved")

    base = ["run", "-i", str(dump), "-r", str(args.reducers), "--json", "-q"]
    results = {"A": [], "C": [], "B": []}
    rows = None
    outs = {}
    for rep in range(args.repeats):
        for name in ["A", "C", "B"]:
            out = Path(tempfile.mkdtemp(dir=work, prefix=f"out-{name}-"))
            ds = out / "ds"
            if name == "A":
                cmds = [[skewer, *base, "-o", ds, "--threads", "2"]]
            elif name == "C":
                cmds = [[skewer, *base, "-o", ds, "--threads", "2", "--timely-workers", "2"]]
            else:
                hosts = out / "hosts.txt"
                hosts.write_text("".join(f"127.0.0.1:{p}\n" for p in free_ports(2)))
                cmds = [[skewer, *base, "-o", ds, "--threads", "1", "--hosts", hosts, "--process", str(i)]
                        for i in range(2)]
            wall, cpu, rss, wire, stdout = run(cmds, out)
            summary = json.loads(stdout)
            rows = summary["manifest"]["counts"]["rows_written"]
            results[name].append((wall, cpu, rss, wire))
            if rep == 0 and name in ("A", "B"):
                outs[name] = digest(ds)
            subprocess.run(["rm", "-rf", out])
    same = outs["A"] == outs["B"]
    print(f"\n{rows:,} rows; one process and two processes wrote {'the same' if same else 'DIFFERENT'} "
          f"bytes ({len(outs['A'])} files)\n")

    labels = {
        "A": "1 process × 2 threads, channels",
        "C": "1 process × 2 threads, timely in-process",
        "B": "2 processes × 1 thread, loopback",
    }
    med = {}
    print("| run | wall s (min–max) | CPU s | peak RSS MiB (largest process) | rows/s per core | loopback B/row |")
    print("|---|---|---|---|---|---|")
    for name in ["A", "C", "B"]:
        walls = [r[0] for r in results[name]]
        wall = statistics.median(walls)
        cpu = statistics.median(r[1] for r in results[name])
        rss = max(r[2] for r in results[name])
        wire = statistics.median(r[3] for r in results[name]) / rows
        med[name] = (wall, cpu, wire)
        print(f"| {labels[name]} | {wall:.2f} ({min(walls):.2f}–{max(walls):.2f}) | {cpu:.1f} | "
              f"{rss:.0f} | {rows / wall / 2:,.0f} | {wire:.1f} |")
    a, c, b = med["A"], med["C"], med["B"]
    print(f"\nexchange across processes: {b[0] / a[0]:.2f}× the wall time of one process "
          f"({(b[0] - a[0]) / b[0]:.0%} of the two-process run), {b[1] / a[1]:.2f}× the CPU; "
          f"timely in-process alone {c[0] / a[0]:.2f}× the wall")

    # From the measured figures to Plumbee's volume: 166 GB/day of compressed events.
    in_per_row = input_bytes / rows
    day_rows = 166e9 / in_per_row
    per_core = rows / b[0] / 2  # the multi-process rate, exchange included
    wire = b[2]
    print(f"\nPlumbee's 166 GB/day at this dump's {in_per_row:.1f} compressed input bytes a row: "
          f"{day_rows / 1e9:.1f} G rows. At {per_core:,.0f} rows/s per core (two processes, "
          "exchange included), machines of 16 cores, perfect scaling:")
    print("\n| machines | wall | network per machine (in and out) |")
    print("|---|---|---|")
    for n in [1, 4, 16, 45]:
        secs = day_rows / (per_core * 16 * n)
        # A row crosses machines unless its reducer is on the machine that read it.
        crossing = day_rows / n * (n - 1) / n * wire
        rate = crossing / secs * 8 / 1e9
        print(f"| {n} | {secs / 60:.1f} min | {crossing / 1e9:.0f} GB, {rate:.2f} Gbit/s |")


if __name__ == "__main__":
    main()
