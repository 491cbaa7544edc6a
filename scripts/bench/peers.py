"""The peers: the same job done with DuckDB, Polars (streaming) and Spark, each at its best
settings for these machines (threads = cores, ZSTD, partitioned by property_name).

    python peers.py duckdb|polars|spark parquet|ndjson INPUT_DIR OUTPUT_DIR [--level N]
        [--schema NAMES.json]

The job: one row per property version (object_id, timestamp, value and the source columns the
input has), sorted by (object_id, timestamp, value) within each property, written as ZSTD
Parquet (at --level, default 3) under OUTPUT_DIR/property_name=<name>/. With --schema (a
JSON list of the property names) NDJSON is read with its schema declared, as a user who
knows the dump's shape would: no pass over the input to infer it.
"""

import json
import os
import sys

THREADS = os.cpu_count() or 2
LEVEL = 3
NAMES = None

# One version of a property in a v1 NDJSON dump.
VERSION_FIELDS = [("value", "VARCHAR"), ("timestamp", "BIGINT"), ("source-type", "VARCHAR"),
                  ("source-id", "VARCHAR"), ("source-label", "VARCHAR"),
                  ("updated-by-user-id", "BIGINT")]


def duckdb_job(fmt, src, out):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    con.execute("SET preserve_insertion_order = false")
    if fmt == "parquet":
        # properties is a STRUCT of one field per property: unpivot it, then unnest versions.
        rows = f"""
            SELECT vid AS object_id, property_name, UNNEST(prop.versions) AS v
            FROM (UNPIVOT (SELECT vid, UNNEST(properties) FROM read_parquet('{src}/*.parquet'))
                  ON COLUMNS(* EXCLUDE (vid)) INTO NAME property_name VALUE prop)"""
        columns = "object_id, property_name, make_timestamptz(v.timestamp * 1000) AS timestamp, v.value AS value"
    else:
        if NAMES is not None:
            # Declared: properties as a MAP of {value, versions[]}; nothing inferred.
            version = ", ".join(f'"{k}" {t}' for k, t in VERSION_FIELDS)
            read = (f"read_ndjson('{src}/*.ndjson', columns = {{'vid': 'BIGINT', 'properties': "
                    f"'MAP(VARCHAR, STRUCT(value VARCHAR, versions STRUCT({version})[]))'}})")
        else:
            # 1,280 keys: inferred as a MAP, read over the whole input so no property is missed.
            read = f"read_ndjson('{src}/*.ndjson', map_inference_threshold = 200, sample_size = -1)"
        rows = f"""
            SELECT vid AS object_id, prop.key AS property_name, UNNEST(prop.value.versions) AS v
            FROM (SELECT vid, UNNEST(map_entries(properties)) AS prop FROM {read})"""
        columns = """object_id, property_name, make_timestamptz(v.timestamp * 1000) AS timestamp,
                     v.value AS value, v."source-type" AS source_type, v."source-id" AS source_id,
                     v."source-label" AS source_label, v."updated-by-user-id" AS updated_by_user_id"""
    con.execute(f"""
        COPY (SELECT {columns} FROM ({rows}) ORDER BY property_name, object_id, timestamp, value)
        TO '{out}' (FORMAT parquet, PARTITION_BY (property_name), COMPRESSION zstd,
                    COMPRESSION_LEVEL {LEVEL})
    """)


def polars_job(fmt, src, out):
    import polars as pl

    if fmt == "parquet":
        lf = pl.scan_parquet(f"{src}/*.parquet")
        fields = ["value", "timestamp"]
    else:
        import glob
        files = sorted(glob.glob(f"{src}/*.ndjson"))
        if NAMES is not None:
            # Declared: every property a struct of {value, versions[]}; nothing inferred.
            types = {"VARCHAR": pl.String, "BIGINT": pl.Int64}
            version = pl.Struct({k: types[t] for k, t in VERSION_FIELDS})
            prop = pl.Struct({"value": pl.String, "versions": pl.List(version)})
            schema = {"vid": pl.Int64, "properties": pl.Struct({n: prop for n in NAMES})}
            lf = pl.scan_ndjson(files, schema=schema)
        else:
            # Every line of every file is scanned for the schema (a glob would take the first
            # file's), and the files' schemas are united: rare properties would be lost otherwise.
            lf = pl.concat([pl.scan_ndjson(f, infer_schema_length=None) for f in files],
                           how="diagonal_relaxed")
        fields = ["value", "timestamp", "source-type", "source-id", "source-label", "updated-by-user-id"]
    # LazyFrame.unnest, not the struct.unnest() expression: on a 1,280-field struct the
    # expression is ~700x slower (84 s against 0.12 s at a tenth of the default size).
    lf = lf.select("vid", "properties").unnest("properties")
    properties = [c for c in lf.collect_schema().names() if c != "vid"]
    lf = lf.select([pl.col("vid")] + [pl.col(p).struct.field("versions").alias(p) for p in properties])
    names = {"source-type": "source_type", "source-id": "source_id",
             "source-label": "source_label", "updated-by-user-id": "updated_by_user_id"}
    lf = (lf.unpivot(on=properties, index="vid", variable_name="property_name", value_name="versions")
            .explode("versions")
            .drop_nulls("versions")
            .select([pl.col("vid").alias("object_id"), "property_name"]
                    + [pl.col("versions").struct.field(f).alias(names.get(f, f)) for f in fields])
            .with_columns(pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
            .sort(["property_name", "object_id", "timestamp", "value"]))
    lf.sink_parquet(pl.PartitionBy(out, key="property_name"), compression="zstd",
                    compression_level=LEVEL, mkdir=True)


def spark_job(fmt, src, out):
    from pyspark.sql import SparkSession, functions as F

    spark = (SparkSession.builder.master(f"local[{THREADS}]")
             .config("spark.driver.memory", "16g")
             .config("spark.sql.shuffle.partitions", str(THREADS * 4))
             .config("spark.sql.parquet.compression.codec", "zstd")
             .config("spark.hadoop.parquet.compression.codec.zstd.level", str(LEVEL))
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(src) if fmt == "parquet" else spark.read.json(src)
    properties = df.schema["properties"].dataType.fieldNames()
    # The field report's approach: unpivot (stack) in batches of 100 properties, explode the
    # versions, union the batches.
    parts = []
    for i in range(0, len(properties), 100):
        batch = properties[i:i + 100]
        stack = ", ".join(f"'{p}', properties.`{p}`.versions" for p in batch)
        parts.append(df.select(F.col("vid").alias("object_id"),
                               F.expr(f"stack({len(batch)}, {stack}) AS (property_name, versions)")))
    rows = parts[0]
    for p in parts[1:]:
        rows = rows.unionByName(p)
    rows = (rows.select("object_id", "property_name", F.explode("versions").alias("v"))
                .select("object_id", "property_name",
                        F.timestamp_millis(F.col("v.timestamp")).alias("timestamp"),
                        F.col("v.value").alias("value")))
    (rows.repartition("property_name")
         .sortWithinPartitions("property_name", "object_id", "timestamp", "value")
         .write.mode("overwrite").partitionBy("property_name").parquet(out))
    spark.stop()


def main():
    global LEVEL, NAMES
    tool, fmt, src, out = sys.argv[1:5]
    rest = sys.argv[5:]
    for flag, value in zip(rest[::2], rest[1::2]):
        if flag == "--level":
            LEVEL = int(value)
        elif flag == "--schema":
            with open(value) as f:
                NAMES = json.load(f)
        else:
            sys.exit(f"unknown option {flag}")
    {"duckdb": duckdb_job, "polars": polars_job, "spark": spark_job}[tool](fmt, src, out)


if __name__ == "__main__":
    main()
