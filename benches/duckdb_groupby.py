#!/usr/bin/env python3
"""DuckDB peer for benches/rank_vs_groupby.sh: one GROUP BY over a capture's `samples`.

    duckdb_groupby.py CAPTURE stack|matrix [THREADS]

Reads only the committed segment files, as the analyzer does (capture/src/segment.rs,
`list_segments`): `samples/date=*/STEM.parquet`, skipping hidden/temporary files, and only
stems with a `_commits/STEM.commit` marker (every file when the capture has no `_commits`
folder, which predates markers). DuckDB drops aggregates nobody reads, so the query sums the
per-group sums: every group's SUM is computed and consumed.

Prints the result row on stdout and, on stderr, the file count and the time spent in the
query alone (the bench measures the whole process, which adds Python's and DuckDB's start).
"""

import os
import sys
import time

import duckdb


def committed_sample_files(cap):
    """The committed `samples` segment files of capture `cap`, sorted by stem."""
    commits = os.path.join(cap, "_commits")
    stems = None
    if os.path.isdir(commits):
        stems = {
            n[: -len(".commit")]
            for n in os.listdir(commits)
            if n.endswith(".commit") and not n.startswith(".")
        }
    out = []
    table = os.path.join(cap, "samples")
    for part in os.listdir(table):
        pdir = os.path.join(table, part)
        if not os.path.isdir(pdir):
            continue
        for name in os.listdir(pdir):
            if name.startswith(".") or not name.endswith(".parquet"):
                continue
            stem = name[: -len(".parquet")]
            if stems is None or stem in stems:
                out.append((stem, os.path.join(pdir, name)))
    out.sort()
    return [p for _, p in out]


def main():
    cap, shape = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    keys = {"stack": "stack_id", "matrix": "stack_id, profile_id"}[shape]
    files = committed_sample_files(cap)
    if not files:
        sys.exit(f"no committed samples files in {cap}")
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    t0 = time.perf_counter()
    row = con.execute(
        f"SELECT count(*), sum(s) FROM (SELECT {keys}, SUM(inuse_bytes) AS s "
        f"FROM read_parquet(?) GROUP BY {keys})",
        [files],
    ).fetchone()
    dt = time.perf_counter() - t0
    print(f"{row[0]},{row[1]}")
    print(f"duckdb {duckdb.__version__}, {len(files)} files, {threads} threads, query {dt:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
