"""Restore throughput: `ddbsync restore --table` against seed 001's one-putItem-per-item loop, same run, same endpoint.

One moto server (the local stack's, `ddbsync.local.stack.MotoServer`, which writes real export layouts) holds
a table of N items (default 10,000; the issue's figure is `--items 100000`), exported once to its S3. Then,
interleaved, each round into a fresh empty table:
- `ddbsync restore`: `restore_command` as the CLI runs it (S3 reads, the verified reader's MD5 and line
  counts, the spool, BatchWriteItem 25 per request from `--workers` threads, the ledger);
- seed 001: the export's data files downloaded, gunzipped and merged (not timed), then one `putItem` per
  item in a loop (timed): the seed's restore.js with its items already in memory;
- seed 001 with its `Promise.all`: the same putItems from as many threads as the restore's workers (the seed
  fires every putItem at once; this is that, bounded).
Prints items/s of each (best of `--rounds`) and the ratios. Everything talks HTTP to the same local server,
whose handler runs one DynamoDB request at a time, so the ratio is about requests, not AWS's capacity.

    python bench/restore.py [--items 10000] [--rounds 3] [--workers 4]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddbsync.cli.restore import add_restore_parser, restore_command  # noqa: E402
from ddbsync.local.stack import MotoServer, aws_environment  # noqa: E402

BUCKET = "bench-restore-exports"
KEY = {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}
ATTRIBUTES = {"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}


def item(i: int) -> dict[str, Any]:
    """An item of about 200 bytes, a few types."""
    return {
        "id": {"S": f"user-{i:08d}"},
        "name": {"S": f"name {i % 99991}"},
        "department": {"S": ("Ops", "Sales", "ExDept", "AnyDept")[i % 4]},
        "salary": {"N": str(30000 + i % 70000)},
        "active": {"BOOL": i % 3 != 0},
        "tags": {"SS": ["a", f"t{i % 10}"]},
        "address": {"M": {"city": {"S": "Tokyo"}, "zip": {"S": f"{i % 1000:03d}-0000"}}},
    }


def create_table(ddb: Any, name: str, pitr: bool = False) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **KEY, **ATTRIBUTES)
    if pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


def count(ddb: Any, table: str) -> int:
    pages = ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


def seed_items(ddb: Any, s3: Any, manifest: str) -> list[dict[str, Any]]:
    """What seed 001 does before its loop: download the data files, gunzip, merge, parse each line's Item."""
    folder = manifest.rsplit("/", 1)[0] + "/data/"
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=folder)
            for o in page.get("Contents", [])]  # fmt: skip
    merged = b"".join(gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys)
    return [json.loads(line)["Item"] for line in merged.splitlines() if line.strip()]


def run_restore(url: str, table: str, workers: int, ledger: Path) -> float:
    parser = argparse.ArgumentParser(prog="ddbsync")
    add_restore_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["restore", "--export", url, "--table", table, "--workers", str(workers), "--ledger", str(ledger)]
    )
    started = time.perf_counter()
    code = restore_command(args)
    elapsed = time.perf_counter() - started
    if code:
        raise SystemExit(f"restore exited {code}")
    return elapsed


def run_put_loop(ddb: Any, table: str, items: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for one in items:
        ddb.put_item(TableName=table, Item=one)
    return time.perf_counter() - started


def run_put_threads(ddb: Any, table: str, items: list[dict[str, Any]], workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda one: ddb.put_item(TableName=table, Item=one), items, chunksize=64):
            pass
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items in the export (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept (default 3)")
    parser.add_argument("--workers", type=int, default=4, help="restore workers and putItem threads (default 4)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ddbsync-bench-restore-") as scratch:
        server = MotoServer().start(Path(scratch) / "moto.log")
        try:
            os.environ.update(aws_environment(server.endpoint))
            os.environ.setdefault("DDBSYNC_STATE_DIR", scratch)
            ddb = boto3.client("dynamodb", config=Config(max_pool_connections=args.workers + 4))
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            create_table(ddb, "bench-source", pitr=True)
            for start in range(0, args.items, 25):
                requests = [{"PutRequest": {"Item": item(i)}} for i in range(start, min(start + 25, args.items))]
                ddb.batch_write_item(RequestItems={"bench-source": requests})
            arn = ddb.describe_table(TableName="bench-source")["Table"]["TableArn"]
            export_arn = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=BUCKET, S3Prefix="bench")[
                "ExportDescription"
            ]["ExportArn"]
            manifest = ddb.describe_export(ExportArn=export_arn)["ExportDescription"]["ExportManifest"]
            url = f"s3://{BUCKET}/{manifest.rsplit('/', 1)[0]}/"
            items = seed_items(ddb, s3, manifest)
            assert len(items) == args.items, (len(items), args.items)
            print(f"export: {args.items:,} items of ~200 bytes, {url}", flush=True)

            best: dict[str, float] = {}
            for number in range(args.rounds):
                for name in ("restore", "putItem loop", "putItem threads"):
                    table = f"bench-{name.replace(' ', '-')}-{number}"
                    create_table(ddb, table)
                    if name == "restore":
                        seconds = run_restore(url, table, args.workers, Path(scratch) / f"ledger-{number}.json")
                    elif name == "putItem loop":
                        seconds = run_put_loop(ddb, table, items)
                    else:
                        seconds = run_put_threads(ddb, table, items, args.workers)
                    written = count(ddb, table)
                    if written != args.items:
                        raise SystemExit(f"{name}: {written} items in {table}, expected {args.items}")
                    rate = args.items / seconds
                    best[name] = max(best.get(name, 0.0), rate)
                    print(f"  round {number + 1} {name:16s} {seconds:7.2f} s  {rate:9,.0f} items/s", flush=True)
                    ddb.delete_table(TableName=table)
        finally:
            server.stop()

    print(f"best of {args.rounds}, {args.items:,} items, {args.workers} workers, one moto server:")
    print(f"  ddbsync restore (BatchWriteItem x25, {args.workers} workers): {best['restore']:10,.0f} items/s")
    print(f"  seed 001 putItem loop:                          {best['putItem loop']:10,.0f} items/s")
    print(f"  seed 001 putItem from {args.workers} threads:                 {best['putItem threads']:10,.0f} items/s")
    print(
        f"ratio: {best['restore'] / best['putItem loop']:.1f}x the seed's loop, "
        f"{best['restore'] / best['putItem threads']:.1f}x its putItems from {args.workers} threads"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
