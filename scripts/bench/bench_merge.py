"""A night's increment merged into a stored dataset: skewer against a full rebuild and against
the same upsert written in DuckDB and in Polars, in one run, interleaved.

Driven by scripts/bench-merge.sh (which sets up the venv). It generates a series with
`skewer gen --increments 1` (nested Parquet: base/, inc-001/ with its events.ndjson and
_deleted-objects.txt, final/), builds the stored dataset from base/ once, then runs, each
rep in turn (ABC… ABC…):

  skewer merge    skewer run --mode merge  -i inc-001 -o <copy of the dataset>
  skewer upsert   skewer run --mode upsert -i inc-001 -o <copy of the dataset>
  skewer rebuild  skewer run -i final -o <new dataset>          (the night without merging)
  duckdb upsert   read the whole dataset, anti-join the (property, object) pairs the
                  increment carries with histories, union the increment's rows (and its
                  webhook changes), drop the deleted ids, COPY … PARTITION_BY property_name
  polars upsert   the same with lazy frames and sink_parquet(PartitionBy)
  deltalake       the same on a Delta table of the stored dataset (built once): delete the
                  deleted ids, merge … when_matched_delete the pairs, append the rows

Every tool writes ZSTD at level 1, skewer's default. The peers write three columns
(object_id, timestamp, value) where skewer writes all seven. Every result must hold exactly
the final state's rows (the generator's answer key for
final/); the table says so per tool. Copying the dataset before a skewer merge is not timed.
Bytes read: skewer's from /proc/<pid>/io (read_bytes) through /usr/bin/time is not available,
so the figure is the stored bytes of the partitions the merge replaced (its manifest).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
THREADS = os.cpu_count() or 2


def skewer_bin():
    if os.environ.get("SKEWER_BIN"):
        return Path(os.environ["SKEWER_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "skewer"


EXPLODE_SQL = """
    SELECT vid AS object_id, property_name, UNNEST(prop.versions) AS v
    FROM (UNPIVOT (SELECT vid, UNNEST(properties) FROM read_parquet('{src}/*.parquet'))
          ON COLUMNS(* EXCLUDE (vid)) INTO NAME property_name VALUE prop)"""


def increment_tables(con, inc):
    """The increment as DuckDB tables: `inc` (its rows, `history` true for rows of a
    history, false for webhook changes) and `deleted` (the ids of the id file)."""
    con.execute(f"""
        CREATE TEMP TABLE inc AS
        SELECT object_id, property_name, make_timestamptz(v.timestamp * 1000) AS timestamp,
               v.value AS value, true AS history
        FROM ({EXPLODE_SQL.format(src=inc)})
        UNION ALL
        SELECT objectId, propertyName, make_timestamptz(occurredAt * 1000), propertyValue, false
        FROM read_json('{inc}/events.ndjson', format = 'newline_delimited',
                       columns = {{objectId: 'BIGINT', propertyName: 'VARCHAR',
                                  propertyValue: 'VARCHAR', occurredAt: 'BIGINT',
                                  subscriptionType: 'VARCHAR'}})
        WHERE subscriptionType LIKE '%.propertyChange'""")
    con.execute(f"""
        CREATE TEMP TABLE deleted AS
        SELECT id FROM read_csv('{inc}/_deleted-objects.txt', header = false, comment = '#',
                                columns = {{id: 'BIGINT'}})""")


def duckdb_upsert(base, inc, out):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    con.execute("SET preserve_insertion_order = false")
    increment_tables(con, inc)
    con.execute(f"""
        COPY (
            SELECT object_id, timestamp, value, property_name FROM (
                SELECT b.object_id, b.timestamp, b.value, b.property_name
                FROM read_parquet('{base}/*/*.parquet', hive_partitioning = true) b
                ANTI JOIN (SELECT DISTINCT property_name, object_id FROM inc WHERE history) k
                    ON b.property_name = k.property_name AND b.object_id = k.object_id
                UNION
                SELECT object_id, timestamp, value, property_name FROM inc)
            WHERE object_id NOT IN (SELECT id FROM deleted)
            ORDER BY property_name, object_id, timestamp, value)
        TO '{out}' (FORMAT parquet, PARTITION_BY (property_name), COMPRESSION zstd,
             COMPRESSION_LEVEL 1)""")


def polars_upsert(base, inc, out):
    import polars as pl

    lf = pl.scan_parquet(f"{inc}/*.parquet").select("vid", "properties").unnest("properties")
    properties = [c for c in lf.collect_schema().names() if c != "vid"]
    lf = lf.select([pl.col("vid")] + [pl.col(p).struct.field("versions").alias(p) for p in properties])
    ts = pl.Datetime("ms", "UTC")
    history = (lf.unpivot(on=properties, index="vid", variable_name="property_name", value_name="versions")
                 .explode("versions")
                 .drop_nulls("versions")
                 .select(pl.col("vid").alias("object_id"), "property_name",
                         pl.col("versions").struct.field("timestamp").cast(ts).alias("timestamp"),
                         pl.col("versions").struct.field("value").alias("value")))
    events = (pl.scan_ndjson(f"{inc}/events.ndjson",
                             schema={"objectId": pl.Int64, "propertyName": pl.String,
                                     "propertyValue": pl.String, "occurredAt": pl.Int64,
                                     "subscriptionType": pl.String})
                .filter(pl.col("subscriptionType").str.ends_with(".propertyChange"))
                .select(pl.col("objectId").alias("object_id"),
                        pl.col("propertyName").alias("property_name"),
                        pl.col("occurredAt").cast(ts).alias("timestamp"),
                        pl.col("propertyValue").alias("value")))
    deleted = [int(line) for line in Path(f"{inc}/_deleted-objects.txt").read_text().splitlines()
               if line and not line.startswith("#")]
    stored = (pl.scan_parquet(f"{base}/*/*.parquet", hive_partitioning=True)
                .select("object_id", pl.col("timestamp").cast(ts), "value", "property_name"))
    keys = history.select("property_name", "object_id").unique()
    merged = (pl.concat([stored.join(keys, on=["property_name", "object_id"], how="anti"),
                         history.select("object_id", "timestamp", "value", "property_name"),
                         events.select("object_id", "timestamp", "value", "property_name")])
                .unique()
                .filter(~pl.col("object_id").is_in(deleted))
                .sort(["property_name", "object_id", "timestamp", "value"]))
    merged.sink_parquet(pl.PartitionBy(out, key="property_name"), compression="zstd",
                        compression_level=1, mkdir=True)


def delta_table(base, out):
    """The stored dataset as a Delta table partitioned by property_name (built once, not
    timed): the table a delta-rs user would merge into."""
    import duckdb
    from deltalake import write_deltalake

    con = duckdb.connect()
    reader = con.sql(f"""
        SELECT object_id, timestamp, value, property_name
        FROM read_parquet('{base}/*/*.parquet', hive_partitioning = true)""").to_arrow_reader()
    write_deltalake(str(out), reader, partition_by=["property_name"],
                    writer_properties=delta_zstd1())


def delta_zstd1():
    from deltalake import WriterProperties
    return WriterProperties(compression="ZSTD", compression_level=1)


def delta_upsert(table, inc, out):
    """The upsert a delta-rs user would write, on a copy of the Delta table (`out`; `table`
    is unused): delete the deleted ids, `merge` the (property, object) pairs the increment
    carries with histories with `when_matched_delete`, append the increment's rows. Three
    commits; the files are not sorted."""
    import duckdb
    from deltalake import DeltaTable, write_deltalake

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    increment_tables(con, inc)
    deleted = [r[0] for r in con.sql("SELECT id FROM deleted").fetchall()]
    dt = DeltaTable(out)
    if deleted:
        dt.delete(f"object_id IN ({', '.join(map(str, deleted))})",
                  writer_properties=delta_zstd1())
    keys = con.sql("SELECT DISTINCT property_name, object_id FROM inc WHERE history").arrow()
    (dt.merge(source=keys, source_alias="s", target_alias="t",
              predicate="t.property_name = s.property_name AND t.object_id = s.object_id",
              writer_properties=delta_zstd1())
       .when_matched_delete()
       .execute())
    rows = con.sql("""
        SELECT DISTINCT object_id, timestamp, value, property_name FROM inc
        WHERE object_id NOT IN (SELECT id FROM deleted)""").to_arrow_reader()
    write_deltalake(out, rows, mode="append", partition_by=["property_name"],
                    writer_properties=delta_zstd1())


def rows_of(dataset):
    """Rows of a Hive-partitioned dataset (data files only; a Delta table's live files), by
    DuckDB."""
    import duckdb
    if (Path(dataset) / "_delta_log").exists():
        from deltalake import DeltaTable
        return DeltaTable(str(dataset)).to_pyarrow_dataset().count_rows()
    return duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{dataset}/*/*.parquet', hive_partitioning = true)"
    ).fetchall()[0][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=200_000)
    ap.add_argument("--properties", type=int, default=1280)
    ap.add_argument("--change-rate", type=float, default=0.01)
    ap.add_argument("--delete-rate", type=float, default=0.001)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reducers", type=int, default=THREADS * 2)
    ap.add_argument("--work", default="/tmp/skewer-bench-merge")
    ap.add_argument("--tools", default="merge,upsert,rebuild,duckdb,polars,deltalake")
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()

    skewer = skewer_bin()
    work = Path(args.work)
    series = work / "series"
    key = series / "final" / "_expected.json"
    if not key.exists():
        shutil.rmtree(series, ignore_errors=True)
        subprocess.run([str(skewer), "gen", "--objects", str(args.objects),
                        "--properties", str(args.properties), "--format", "parquet",
                        "--increments", "1", "--change-rate", str(args.change_rate),
                        "--delete-rate", str(args.delete_rate), "-o", str(series)],
                       check=True, stdout=subprocess.DEVNULL)
    final_rows = json.loads(key.read_text())["rows"]
    base = work / "base-dataset"
    if not (base / "_skewer").exists():
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run([str(skewer), "run", "-q", "-i", str(series / "base"), "-o", str(base),
                        "-r", str(args.reducers)], check=True, stdout=subprocess.DEVNULL)
    inc = series / "inc-001"
    base_delta = work / "base-delta"
    if "deltalake" in args.tools.split(",") and not (base_delta / "_delta_log").exists():
        shutil.rmtree(base_delta, ignore_errors=True)
        delta_table(base, base_delta)
    base_bytes = sum(f.stat().st_size for f in base.rglob("*.parquet"))

    def prepare(tool):
        out = work / f"out-{tool}"
        shutil.rmtree(out, ignore_errors=True)
        if tool in ("merge", "upsert"):
            shutil.copytree(base, out)
        if tool == "deltalake":
            shutil.copytree(base_delta, out)
        return out

    def command(tool, out):
        run = [str(skewer), "run", "-q", "--json", "-r", str(args.reducers)]
        if tool in ("merge", "upsert"):
            return run + ["--mode", tool, "-i", str(inc), "-o", str(out)]
        if tool == "rebuild":
            return run + ["-i", str(series / "final"), "-o", str(out)]
        return [sys.executable, __file__, "--peer", tool, str(base), str(inc), str(out)]

    tools = args.tools.split(",")
    results = {t: [] for t in tools}
    for rep in range(args.reps):
        for tool in tools:
            out = prepare(tool)
            wall, cpu, rss, stdout, stderr = measure(command(tool, out), args.timeout)
            rows = rows_of(out)
            extra = {}
            if tool in ("merge", "upsert"):
                manifest = json.loads(stdout)["manifest"]
                extra["partitions"] = len(manifest["replaced"])
                extra["read_back"] = manifest["counts"]["stored_rows_read"]
            results[tool].append((wall, cpu, rss, rows, extra))
            print(f"rep {rep + 1} {tool:8} {wall:7.2f} s  cpu {cpu:7.2f} s  "
                  f"rss {rss / 2**20:7.0f} MiB  rows {rows:,} "
                  f"({'ok' if rows == final_rows else 'WRONG: want %d' % final_rows}) {extra}",
                  flush=True)

    print()
    print(f"{args.objects:,} objects x {args.properties} properties, stored dataset "
          f"{base_bytes / 2**20:.0f} MiB; increment {inc} ; final state {final_rows:,} rows; "
          f"{args.reps} reps interleaved, {THREADS} cores")
    print(f"| tool | wall s median (min-max) | cpu s | peak RSS MiB | rows = final |")
    print(f"|---|---|---|---|---|")
    medians = {}
    for tool in tools:
        walls = [r[0] for r in results[tool]]
        medians[tool] = statistics.median(walls)
        ok = all(r[3] == final_rows for r in results[tool])
        print(f"| {tool} | {medians[tool]:.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
              f"{statistics.median(r[1] for r in results[tool]):.2f} | "
              f"{max(r[2] for r in results[tool]) / 2**20:.0f} | {'yes' if ok else 'NO'} |")
    peers = [t for t in tools if t in ("duckdb", "polars", "deltalake")]
    for mine in ("merge", "upsert"):
        if mine in medians and peers:
            fastest = min(peers, key=lambda t: medians[t])
            print(f"skewer {mine}: {medians[fastest] / medians[mine]:.1f}x the fastest peer "
                  f"({fastest}); {medians.get('rebuild', float('nan')) / medians[mine]:.1f}x "
                  f"the rebuild")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        tool, base, inc, out = sys.argv[2:6]
        {"duckdb": duckdb_upsert, "polars": polars_upsert,
         "deltalake": delta_upsert}[tool](base, inc, out)
    else:
        main()
