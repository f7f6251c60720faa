#!/usr/bin/env python3
"""Rewrites the Parquet segments of a leakscope capture as other writers would.

Used by tests/tests/integrity.rs (foreign Parquet). Usage:

    foreign_rewrite.py MODE CAPTURE

MODE (the capture is changed in place; copy it first):

  pyarrow-types  every segment through pyarrow with other types that read back losslessly:
                 strings as large_string (samples, stacks frames), string_view (profiles)
                 or dictionary (samples.kind), times in micro- or milliseconds or naive
                 (scrapes), stacks.depth and profiles.sample_count as int64, every
                 column nullable.
  int64-ids      one samples segment (the first) with stack_id as int64, as a writer
                 without unsigned types stores it: ids of 2^63 and above become negative.
  text-ids       one stacks segment (the first) with stack_id as a string.
  duckdb         every segment through DuckDB (COPY ... TO ... (FORMAT parquet)).

Prints the rewritten files, one a line.
"""

import glob
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def segments(cap, table):
    return sorted(glob.glob(os.path.join(cap, table, "date=*", "*.parquet")))


def retype(t, field, to):
    i = t.schema.get_field_index(field)
    return t.set_column(i, pa.field(field, to, nullable=True), pc.cast(t.column(i), to, safe=False))


def write(t, path):
    pq.write_table(t, path)
    print(path)


def large_frames(t):
    # frames: list<struct<function: large_string, file: large_string, ...>>, nullable.
    i = t.schema.get_field_index("frames")
    st = t.schema.field("frames").type.value_type
    fields = []
    for f in st:
        ft = pa.large_string() if pa.types.is_string(f.type) else f.type
        fields.append(pa.field(f.name, ft, nullable=True))
    to = pa.large_list(pa.field("element", pa.struct(fields), nullable=True))
    return t.set_column(i, pa.field("frames", to, nullable=True), pc.cast(t.column(i), to))


def pyarrow_types(cap):
    for path in segments(cap, "samples"):
        t = pq.read_table(path, partitioning=None)
        for name in ("run_id", "labels"):
            t = retype(t, name, pa.large_string())
        t = retype(t, "kind", pa.dictionary(pa.int32(), pa.string()))
        t = retype(t, "time", pa.timestamp("us", tz="UTC"))
        write(t, path)
    for path in segments(cap, "stacks"):
        t = pq.read_table(path, partitioning=None)
        t = retype(t, "origin", pa.large_string())
        t = retype(t, "depth", pa.int64())
        t = large_frames(t)
        write(t, path)
    for path in segments(cap, "profiles"):
        t = pq.read_table(path, partitioning=None)
        for name in ("kind", "target", "run_id", "period_type", "source"):
            t = retype(t, name, pa.string_view())
        t = retype(t, "sample_count", pa.int64())
        t = retype(t, "time", pa.timestamp("us", tz="UTC"))
        write(t, path)
    for path in segments(cap, "process"):
        t = pq.read_table(path, partitioning=None)
        t = retype(t, "time", pa.timestamp("ms", tz="UTC"))
        t = retype(t, "target", pa.large_string())
        write(t, path)
    for path in segments(cap, "scrapes"):
        # pandas' default: naive nanosecond times (UTC by convention).
        t = pq.read_table(path, partitioning=None)
        t = retype(t, "time", pa.timestamp("ns"))
        t = retype(t, "endpoint", pa.string_view())
        write(t, path)


def int64_ids(cap):
    path = segments(cap, "samples")[0]
    t = pq.read_table(path, partitioning=None)
    t = retype(t, "stack_id", pa.int64())
    write(t, path)


def text_ids(cap):
    path = segments(cap, "stacks")[0]
    t = pq.read_table(path, partitioning=None)
    t = retype(t, "stack_id", pa.string())
    write(t, path)


def duckdb_all(cap):
    import duckdb

    con = duckdb.connect()
    for table in ("profiles", "samples", "stacks", "process", "scrapes"):
        for path in segments(cap, table):
            tmp = path + ".duck"
            src = path.replace("'", "''")
            dst = tmp.replace("'", "''")
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{src}', hive_partitioning = false)) "
                f"TO '{dst}' (FORMAT parquet)"
            )
            os.replace(tmp, path)
            print(path)


MODES = {
    "pyarrow-types": pyarrow_types,
    "int64-ids": int64_ids,
    "text-ids": text_ids,
    "duckdb": duckdb_all,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](sys.argv[2])
