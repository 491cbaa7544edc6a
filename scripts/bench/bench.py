"""skewer against the tools a data engineer would reach for, on the same input, in one run.

Driven by scripts/bench.sh, which sets up the venv. For each input format it generates a dump
with `skewer gen`, runs every tool on it, and prints one table: wall, user+sys, peak RSS of the
whole process tree (sampled, so Spark's JVM child counts), files, files per property, output
size, rows, and whether the rows match. skewer's rows are checked against the generator's
checksum; every peer's rows against skewer's, through one DuckDB hash over all outputs.

Every tool does the same job: one row per version (object_id, timestamp, value, and the source
columns the input has), sorted by (object_id, timestamp, value), ZSTD Parquet partitioned by
property_name.

Fair by construction: every peer writes ZSTD at --level (default 3, their own default), and
skewer is shown at its default (1) and at that level; NDJSON peers are given the schema (a
MAP for DuckDB; for Polars the property list, found before any timing, as a user would have
it from the CRM's properties API), so none scans the input to infer it; every output is
checked for the same rows, source columns included, and for (object_id, timestamp) order
within each file; the tools' runs are interleaved (A B C, A B C, ...) and the table shows the
median and the spread; tool versions are printed.
"""

import argparse
import json
import os
import resource
import statistics
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# As the other scripts find it: $SKEWER_BIN, else release/skewer under $CARGO_TARGET_DIR.
SKEWER = Path(os.environ.get("SKEWER_BIN")
              or Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "skewer")
SOURCES = ("source_type", "source_id", "source_label", "updated_by_user_id")


def tree_usage(root_pid):
    """Resident bytes of a process and all its descendants (see `resident`), and each one's
    CPU seconds so far (user + system, from /proc/<pid>/stat)."""
    children, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rfind(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            # utime and stime are fields 14 and 15 of stat; `fields` starts at field 3.
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, ValueError, IndexError):
            continue
    total, todo, tree_cpu = 0, [root_pid], {}
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if pid in cpu:
            tree_cpu[pid] = cpu[pid]
        total += resident(pid)
    return total, tree_cpu


def resident(pid):
    """A process's proportional set size: its resident pages, each shared one divided among
    the processes sharing it, so a tree's sum counts pyspark's forked workers once (summing
    VmRSS counted Spark's tree at 26 GiB on a 23 GiB machine). VmRSS where there is no Pss."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            continue
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def kill_tree(pid):
    """Kills a process and its descendants (a peer that ran out of time)."""
    import signal
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                    kill_tree(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


TIME = "/usr/bin/time"


def measure(cmd, timeout, env=None):
    """Runs cmd; returns (wall s, user+sys s, peak RSS bytes, stdout, stderr).

    Peak RSS is the larger of /usr/bin/time -v's maximum (exact, the largest single process)
    and the whole process tree's proportional set size sampled every 0.1 s (Spark's JVM and
    Python workers together).
    CPU is the larger of the reaped children's usage and the tree's, summed over every process
    seen at its last sample: pyspark's JVM is never reaped through the driver, so getrusage
    misses it (the sampled figure misses at most each process's last 0.1 s).
    """
    timed = os.access(TIME, os.X_OK)
    report, name = None, cmd[0]
    if timed:
        fd, report = tempfile.mkstemp(prefix="skewer-bench-time-")
        os.close(fd)
        cmd = [TIME, "-v", "-o", report] + cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, seen_cpu = [0], {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, cpu_by_pid = tree_usage(proc.pid)
            peak[0] = max(peak[0], rss)
            seen_cpu.update(cpu_by_pid)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        done.set()
        raise RuntimeError(f"timed out after {timeout} s")
    done.set()
    sampler.join()
    wall = time.time() - start
    # Children's usage accumulates: this command's is the difference.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(cpu, sum(seen_cpu.values()))
    if report:
        with open(report) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    peak[0] = max(peak[0], int(line.split(":")[1]) * 1024)
        os.unlink(report)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err[-2000:]}")
    return wall, cpu, peak[0], out, err


def dataset_figures(path):
    files = [p for p in Path(path).rglob("*.parquet") if "_skewer" not in p.parts]
    per_property = {}
    for f in files:
        per_property[f.parent.name] = per_property.get(f.parent.name, 0) + 1
    size = sum(f.stat().st_size for f in files)
    counts = list(per_property.values()) or [0]
    return len(files), sum(counts) / max(len(counts), 1), max(counts), size


def row_hash(path):
    """Rows, an order-independent hash of (property, object, ms, value, source columns; a
    column a tool did not write counts as null), and the rows out of (object_id, timestamp)
    order within their file, via DuckDB."""
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads=2")
    files = f"read_parquet('{path}/**/*.parquet', hive_partitioning = true, union_by_name = true"
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {files})").fetchall()}
    sources = ", ".join(f"CAST({c} AS VARCHAR)" if c in have else "NULL::VARCHAR" for c in SOURCES)
    rows, digest = con.execute(f"""
        SELECT count(*), sum(hash(property_name, object_id::BIGINT,
                                  epoch_ms(timestamp::TIMESTAMPTZ), value, {sources})::HUGEINT)
        FROM {files})
    """).fetchone()
    unsorted = con.execute(f"""
        SELECT count(*) FROM (
            SELECT object_id::BIGINT AS o, epoch_ms(timestamp::TIMESTAMPTZ) AS t,
                   lag(object_id::BIGINT) OVER w AS po,
                   lag(epoch_ms(timestamp::TIMESTAMPTZ)) OVER w AS pt
            FROM {files}, filename = true, file_row_number = true)
            WINDOW w AS (PARTITION BY filename ORDER BY file_row_number))
        WHERE po > o OR (po = o AND pt > t)
    """).fetchone()[0]
    return rows, digest, unsorted


def versions(peers):
    out = [subprocess.run([str(SKEWER), "--version"], capture_output=True, text=True).stdout.strip()]
    for peer in peers:
        module = {"duckdb": "duckdb", "polars": "polars", "spark": "pyspark"}[peer]
        try:
            out.append(f"{peer} {__import__(module).__version__}")
        except ImportError:
            out.append(f"{peer} (not installed)")
    return ", ".join(out)


def ndjson_schema(dump, work):
    """The property names of an NDJSON dump, written for the peers to declare (untimed)."""
    import duckdb
    path = work / f"schema-{dump.name}.json"
    if not path.exists():
        con = duckdb.connect()
        names = [r[0] for r in con.execute(f"""
            SELECT DISTINCT unnest(map_keys(properties)) AS name
            FROM read_ndjson('{dump}/*.ndjson', columns = {{'properties': 'MAP(VARCHAR, JSON)'}})
            ORDER BY name""").fetchall()]
        path.write_text(json.dumps(names))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--formats", default="parquet,ndjson")
    ap.add_argument("--with-spark", action="store_true")
    ap.add_argument("--work", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--peers", default="duckdb,polars")
    ap.add_argument("--skewer-args", default="")
    ap.add_argument("--level", type=int, default=3,
                    help="ZSTD level every peer writes (skewer is also shown at it)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per tool before it is killed")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each round runs every tool once, in turn")
    args = ap.parse_args()

    work = Path(args.work or (Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "bench"))
    work.mkdir(parents=True, exist_ok=True)
    objects = int(200_000 * args.scale)
    peers = [p for p in args.peers.split(",") if p] + (["spark"] if args.with_spark else [])
    python = sys.executable
    results = []
    print(f"# {objects:,} objects x 1,280 properties, scale {args.scale}; "
          f"{os.cpu_count()} cores; {SKEWER}", flush=True)
    print(f"# {versions(peers)}; peers at ZSTD level {args.level}; {args.repeat} rounds, "
          "interleaved", flush=True)

    for fmt in args.formats.split(","):
        dump = work / f"dump-{fmt}-{objects}"
        if not (dump / "_expected.json").exists():
            shutil.rmtree(dump, ignore_errors=True)
            files = "8" if fmt == "parquet" else "4"
            subprocess.run([str(SKEWER), "gen", "--objects", str(objects), "--properties", "1280",
                            "--format", fmt, "--files", files, "--out", str(dump)],
                           check=True, stdout=subprocess.DEVNULL)
        expected = json.loads((dump / "_expected.json").read_text())
        in_size = sum(p.stat().st_size for p in dump.iterdir() if not p.name.startswith("_"))
        print(f"\n## {fmt}: {in_size / 2**20:,.0f} MiB, {expected['rows']:,} rows", flush=True)

        skewer = [str(SKEWER), "run", "--input", str(dump), "--output", "{out}", "--json"]
        skewer += args.skewer_args.split()
        tools = [("skewer", skewer)]
        if args.level != 1:
            tools.append((f"skewer level {args.level}", skewer + ["--zstd-level", str(args.level)]))
        declared = ["--schema", str(ndjson_schema(dump, work))] if fmt == "ndjson" else []
        for peer in peers:
            tools.append((peer, [python, str(HERE / "peers.py"), peer, fmt, str(dump), "{out}",
                                 "--level", str(args.level)] + declared))
        runs = {name: [] for name, _ in tools}
        failed = {}
        # Rounds outermost: a slow spell on a shared machine falls on every tool alike.
        for rnd in range(args.repeat):
            for name, cmd in tools:
                if name in failed:
                    continue
                out = work / f"out-{fmt}-{name.replace(' ', '-')}-{rnd}"
                shutil.rmtree(out, ignore_errors=True)
                try:
                    runs[name].append((measure([c.replace("{out}", str(out)) for c in cmd],
                                               args.timeout), out))
                except RuntimeError as e:
                    print(f"{name}: {e}", flush=True)
                    failed[name] = str(e)[:200]
                    continue
                # The first round's outputs are checked; the others go at once.
                if rnd > 0 and not args.keep:
                    shutil.rmtree(out, ignore_errors=True)

        skewer_hash = None
        for name, _ in tools:
            if name in failed:
                results.append(dict(format=fmt, tool=name, error=failed[name]))
                continue
            walls = sorted(r[0][0] for r in runs[name])
            wall = statistics.median(walls)
            cpu = statistics.median(r[0][1] for r in runs[name])
            rss = max(r[0][2] for r in runs[name])
            stdout, out = runs[name][0][0][3], runs[name][0][1]
            nfiles, mean_files, max_files, size = dataset_figures(out)
            rows, digest, unsorted = row_hash(out)
            load = None
            if name.startswith("skewer"):
                load = json.loads(stdout)["actual_max_over_mean"]
                check = subprocess.run([str(SKEWER), "checksum", str(out), "--expected", str(dump)],
                                       capture_output=True, text=True)
                ok = check.returncode == 0
                skewer_hash = skewer_hash or (rows, digest)
            else:
                ok = skewer_hash is not None and (rows, digest) == skewer_hash
            row = dict(format=fmt, tool=name, wall_s=round(wall, 2),
                       wall_spread=f"{walls[0]:.2f}-{walls[-1]:.2f}", cpu_s=round(cpu, 1),
                       peak_rss_mib=round(rss / 2**20), files=nfiles,
                       files_per_property=round(mean_files, 3), max_files_per_property=max_files,
                       output_mib=round(size / 2**20, 1), rows=rows, rows_match=ok,
                       unsorted_rows=unsorted, reducer_load_max_over_mean=load)
            results.append(row)
            print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)

    print("\n| input | tool | wall s, median (min-max) | user+sys s | peak RSS MiB | files "
          "| files/property (mean, max) | output MiB | rows | rows match | sorted in each file "
          "| reducer load max/mean | skewer speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['format']} | {r['tool']} | failed: {r['error']} |||||||||||")
            continue
        ours = next((x for x in results if x["format"] == r["format"] and x["tool"] == "skewer"
                     and "error" not in x), None)
        ratio = (f"{r['wall_s'] / ours['wall_s']:.1f}x"
                 if ours and not r["tool"].startswith("skewer") else "")
        load = r.get("reducer_load_max_over_mean")
        load = f"{load:.3f}" if load is not None else ""
        order = "yes" if r["unsorted_rows"] == 0 else f"NO ({r['unsorted_rows']:,} rows out of order)"
        print(f"| {r['format']} | {r['tool']} | {r['wall_s']} ({r['wall_spread']}) | {r['cpu_s']} "
              f"| {r['peak_rss_mib']:,} | {r['files']:,} | {r['files_per_property']}, "
              f"{r['max_files_per_property']} | {r['output_mib']:,} | {r['rows']:,} "
              f"| {'yes' if r['rows_match'] else 'NO'} | {order} | {load} | {ratio} |")
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
