"""Backfill throughput and memory: a generated export loaded end to end against raw COPY of the same rows.

One run, one PostgreSQL server (default durability): an export of N Employees items (default
1,000,000) is written in DynamoDB's layout (gzipped DynamoDB JSON lines, several data files, a
manifest with MD5s) to a local folder, then
- the backfill: `load_export` as `ddbsync backfill` runs it (stream the gzip, check the MD5 and line
  count, decode through the mapping, COPY into the stage, one version-guarded merge per chunk, the
  ledger, then the full export's delete pass), in a child process whose peak resident memory is
  reported;
- raw COPY: the same rows, already as COPY text, copied into an empty table of the same columns
  (no gzip, no JSON, no decode, no merge, no version);
and prints items/s of both and their ratio. S3 is left out (the files are read from disk through the
same verified reader), so the figure is the loader's own.

    python bench/backfill.py [--items 1000000] [--files 8] [--workers 1]
    DATABASE_URL=postgresql://... python bench/backfill.py   # an existing server
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream_apply import fresh_database  # noqa: E402
from ddbsync.core import Replicator  # noqa: E402
from ddbsync.core.connection import connect  # noqa: E402
from ddbsync.exports.loading import load_export  # noqa: E402
from ddbsync.exports.manifest import DataFile, ExportSummary  # noqa: E402
from ddbsync.exports.reading import verified_lines  # noqa: E402
from ddbsync.local.postgres import PostgresServer  # noqa: E402
from schema.model import load_mappings  # noqa: E402

DEPARTMENTS = ["AnyDept", "ExDept", "Ops", "Sales"]


def write_files(folder: Path, items: int, files: int) -> list[DataFile]:
    """Data files of `items` Employees items, as an export writes them; their manifest entries."""
    entries = []
    for number in range(files):
        path = folder / f"{number:02d}.json.gz"
        count = 0
        with gzip.open(path, "wt", compresslevel=6) as out:
            for i in range(number + 1, items + 1, files):
                item = {"Id": {"N": str(i)}, "empName": {"S": f"name{i % 99991}"}}
                item["empDepartment"] = {"S": DEPARTMENTS[i % 4]}
                out.write(json.dumps({"Item": item}) + "\n")
                count += 1
        digest = hashlib.md5(path.read_bytes()).digest()
        entries.append(DataFile(str(path), count, digest))
    return entries


def copy_text(items: int) -> str:
    return "".join(f"{i}\tname{i % 99991}\t{DEPARTMENTS[i % 4]}\n" for i in range(1, items + 1))


class LocalExports:
    """The export reader's `opener`, over local files: the same verified gzip reader S3 objects go through."""

    def opener(self, summary: ExportSummary, data_file: DataFile) -> Callable[[], Iterator[dict[str, Any]]]:
        def lines() -> Iterator[dict[str, Any]]:
            with open(data_file.key, "rb") as raw:
                yield from verified_lines(raw, data_file, data_file.key)

        return lines


def backfill_child(url: str, files: list[DataFile], items: int, answer: Any, workers: int = 1) -> None:
    """Run in a fresh process, so its peak resident memory is the loader's."""
    summary = ExportSummary(
        export_arn="arn:aws:dynamodb:us-east-1:123456789012:table/Employees/export/bench",
        table_name="Employees",
        export_time=datetime.now(timezone.utc) - timedelta(minutes=1),
        export_type="FULL_EXPORT",
        output_format="DYNAMODB_JSON",
        item_count=items,
        bucket="local",
        manifest_files_key="bench/AWSDynamoDB/bench/manifest-files.json",
    )
    replicator = Replicator(load_mappings(), lambda: connect(url))
    started = time.perf_counter()

    def fresh() -> tuple[Replicator, Any]:
        return Replicator(load_mappings(), lambda: connect(url)), LocalExports()

    report = load_export(replicator, LocalExports(), summary, files, workers=workers, fresh=fresh)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    replicator.close()
    peak_mb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    answer.send((report.items, report.upserted, seconds, peak_mb))


def raw_copy_rate(url: str, text: str, items: int) -> float:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS raw_employees")
        cursor.execute("CREATE TABLE raw_employees (id bigint PRIMARY KEY, name varchar(20), department varchar(10))")
    connection.commit()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.copy_expert("COPY raw_employees FROM STDIN", io.StringIO(text))
    connection.commit()
    seconds = time.perf_counter() - started
    connection.close()
    return items / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the export (default 1000000)")
    parser.add_argument("--files", type=int, default=8, help="data files (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="files loaded at once, as --workers does (default 1)")
    args = parser.parse_args(argv)
    if min(args.items, args.files, args.workers) <= 0:
        parser.error("--items, --files and --workers take positive numbers")
    server = None if os.environ.get("DATABASE_URL") else PostgresServer().start()
    try:
        url = fresh_database(os.environ.get("DATABASE_URL") or server.url, "ddbsync_bench_backfill")
        with tempfile.TemporaryDirectory() as folder:
            files = write_files(Path(folder), args.items, args.files)
            size_mb = sum(os.path.getsize(f.key) for f in files) / 2**20
            print(f"export: {args.items:,} items in {args.files} gzipped files, {size_mb:.1f} MB")
            receive, send = multiprocessing.Pipe(duplex=False)
            child = multiprocessing.get_context("fork").Process(
                target=backfill_child, args=(url, files, args.items, send, args.workers)
            )
            child.start()
            loaded, written, seconds, peak_mb = receive.recv()
            child.join()
        rate = loaded / seconds
        raw = raw_copy_rate(url, copy_text(args.items), args.items)
        print(
            f"backfill, {args.workers} worker(s) (gzip, MD5, decode, COPY, guarded merge, ledger): {rate:,.0f} items/s"
        )
        print(f"raw COPY of the same rows into an empty table:                     {raw:,.0f} rows/s")
        print(f"ratio: {rate / raw:.2f}x raw COPY; {written:,} rows written; peak memory per process {peak_mb:.0f} MB")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
