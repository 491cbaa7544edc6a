"""Checks a skewer dataset with DuckDB, pyarrow and Polars; see check-readers.sh."""

import glob
import json
import os
import sys

import duckdb
import polars as pl
import pyarrow
import pyarrow.dataset as ds
import pyarrow.parquet as pq

TYPES = {
    "object_id": "BIGINT",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "value": "VARCHAR",
    "source_type": "VARCHAR",
    "source_id": "VARCHAR",
    "source_label": "VARCHAR",
    "updated_by_user_id": "BIGINT",
    "property_name": "VARCHAR",
}

# What Polars makes of the same columns (TIMESTAMP(MILLIS, UTC) comes back as ms in UTC).
POLARS_TYPES = {
    "object_id": pl.Int64,
    "timestamp": pl.Datetime("ms", "UTC"),
    "value": pl.String,
    "source_type": pl.String,
    "source_id": pl.String,
    "source_label": pl.String,
    "updated_by_user_id": pl.Int64,
    "property_name": pl.String,
}


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main(dataset):
    runs = sorted(glob.glob(os.path.join(dataset, "_skewer/runs/*.json")))
    if not runs:
        fail(f"{dataset}: no run manifests")
    manifest = json.load(open(runs[-1]))
    history = json.load(open(os.path.join(dataset, "_skewer/history", manifest["run_id"] + ".json")))
    want_rows = sum(v["rows"] for v in history["properties"].values())
    want_by_property = {k: v["rows"] for k, v in history["properties"].items()}

    con = duckdb.connect()
    source = f"read_parquet('{dataset}/**/*.parquet', hive_partitioning = true)"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    for column, t in TYPES.items():
        if types.get(column) != t:
            fail(f"DuckDB types {column} as {types.get(column)}, expected {t}")
    duck_rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    duck_by_property = dict(con.execute(f"SELECT property_name, count(*) FROM {source} GROUP BY 1").fetchall())

    table = ds.dataset(dataset, format="parquet", partitioning="hive").to_table()
    arrow_by_property = {}
    for name, n in zip(*table.group_by("property_name").aggregate([("object_id", "count")])
                       .select(["property_name", "object_id_count"]).to_pydict().values()):
        arrow_by_property[name] = n

    lazy = pl.scan_parquet(f"{dataset}/**/*.parquet", hive_partitioning=True)
    schema = lazy.collect_schema()
    for column, t in POLARS_TYPES.items():
        if schema.get(column) != t:
            fail(f"Polars types {column} as {schema.get(column)}, expected {t}")
    polars_rows = lazy.select(pl.len()).collect().item()
    polars_by_property = dict(lazy.group_by("property_name").agg(pl.len()).collect().iter_rows())

    for reader, rows, by_property in [("DuckDB", duck_rows, duck_by_property),
                                      ("pyarrow", table.num_rows, arrow_by_property),
                                      ("Polars", polars_rows, polars_by_property)]:
        if rows != want_rows:
            fail(f"{reader} reads {rows} rows, the run wrote {want_rows}")
        if by_property != want_by_property:
            diff = set(by_property.items()) ^ set(want_by_property.items())
            fail(f"{reader} sees other property names or counts: {sorted(diff, key=repr)[:6]}")

    files = 0
    for path in glob.glob(os.path.join(dataset, "**/*.parquet"), recursive=True):
        if "/_skewer/" in path:
            continue
        files += 1
        f = pq.ParquetFile(path)
        if not f.metadata.row_group(0).sorting_columns:
            fail(f"{path}: no sorting_columns")
        t = f.read(columns=["object_id", "timestamp"])
        keys = list(zip(t["object_id"].to_pylist(), t["timestamp"].to_pylist()))
        if keys != sorted(keys):
            fail(f"{path}: rows not sorted by (object_id, timestamp)")

    print(f"ok: DuckDB {duckdb.__version__}, pyarrow {pyarrow.__version__} and Polars {pl.__version__} "
          f"read {want_rows} rows of "
          f"{len(want_by_property)} properties in {files} sorted files, with the output schema's types (ARCHITECTURE.md)")


if __name__ == "__main__":
    main(sys.argv[1])
