"""`make demo`: seed 002's walk-through, then Employees and Shop changes, replicated on the local stack."""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import psycopg2

from ddbsync.core.compare import Comparison, compare
from ddbsync.local.stack import EXPORT_BUCKET, LocalStack, drain, handler_metrics_discarded, replicate_until
from ddbsync.local.stream_runner import BatchReport, StreamRunner
from ddbsync.local.workload import DEPARTMENTS, NAMES, Write, mixed_writes, seed_walk_through
from ddbsync.streams.records import lambda_json

EMPLOYEES = "SELECT id, name, department, _ddb_extras FROM employees ORDER BY id"


def print_rows(out: TextIO, database_url: str, query: str, limit: int = 5) -> None:
    """A few rows of a query, as psql would show them (roughly)."""
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        names = [d.name for d in cursor.description]
        rows = cursor.fetchall()
    print("    " + " | ".join(names), file=out)
    for row in rows[:limit]:
        print("    " + " | ".join("" if v is None else str(v)[:24] for v in row), file=out)
    if len(rows) > limit:
        print(f"    ... {len(rows) - limit} more rows", file=out)
    if not rows:
        print("    (no rows)", file=out)


def compare_with_dynamodb(stack: LocalStack) -> list[Comparison]:
    """Every mapped DynamoDB table, scanned and seen through the mapping, against its SQL tables."""
    dynamodb = stack.client("dynamodb")
    results = []
    with psycopg2.connect(stack.database_url) as connection, connection.cursor() as cursor:
        for source in stack.mappings:
            pages = dynamodb.get_paginator("scan").paginate(TableName=source.name, ConsistentRead=True)
            items = [lambda_json(item) for page in pages for item in page["Items"]]
            results += compare(cursor, stack.mappings, source.name, items)
    connection.close()
    return results


def in_step(results: list[Comparison]) -> bool:
    return all(r.equal for r in results)


def run_demo(changes: int = 3000, rate: float = 1000.0, out: TextIO | None = None) -> int:
    """Start the stack, replicate the walk-through and `changes` generated changes, print, stop."""
    out = out or sys.stdout
    with handler_metrics_discarded():  # the demo prints its own summary
        return _run(changes, rate, out)


def _run(changes: int, rate: float, out: TextIO) -> int:
    started = time.monotonic()
    stack = LocalStack()
    print("Starting the local stack (moto server + PostgreSQL) ...", file=out, flush=True)
    stack.start()
    try:
        print(f"  AWS endpoint  {stack.endpoint}\n  PostgreSQL    {stack.database_url}\n", file=out)
        dynamodb = stack.client("dynamodb")
        existing = preload(dynamodb, PRELOADED)
        print(
            f"Employees already holds {existing} items before replication starts: the stream runners start at "
            "LATEST, as an event source mapping added to a table in use does; a backfill brings those items.\n",
            file=out,
        )
        deliveries = Deliveries()
        runners = stack.runners(deliveries, starting_position="LATEST")
        print("Seed 002 walk-through:", file=out)
        for step, (title, request) in enumerate(seed_walk_through(), 1):
            request(dynamodb)
            drain(runners)
            print(f"  {step}. aws dynamodb {title}", file=out)
            print_rows(out, stack.database_url, EMPLOYEES)
        print(
            f"\n{changes} generated changes to Employees and to the single-table Shop (customers and orders), "
            f"at up to {rate:.0f}/s while the stream runners replicate them ...",
            file=out,
            flush=True,
        )
        rng = random.Random(2001)
        backfill = Backfilling(stack)
        backfill.start()  # requests an export of Employees while the writer writes, and loads it
        write_while_replicating(stack, runners, mixed_writes(changes, rng), rate)
        backfill.join()
        drain(runners)
        print(
            f"\nBackfill of Employees from a point-in-time export, while the stream ran:\n  {backfill.outcome}",
            file=out,
        )
        _summary(stack, out, deliveries.applied, deliveries.lags, time.monotonic() - started)
    finally:
        stack.stop()
        print("Local stack stopped.", file=out)
    return 0


PRELOADED = 1000  # Employees items written before replication starts


def preload(dynamodb: Any, count: int) -> int:
    """Items the table holds before replication starts; their ids overlap the workload's, so both touch them."""
    rng = random.Random(1999)
    items = [
        {"Id": {"N": str(i)}, "empName": {"S": rng.choice(NAMES)}, "empDepartment": {"S": rng.choice(DEPARTMENTS)}}
        for i in range(400, 400 + count)
    ]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={"Employees": requests})
    return len(items)


class Backfilling(threading.Thread):
    """`ddbsync backfill --table Employees --start` in a thread: export now, wait, load, while the stream runs."""

    def __init__(self, stack: LocalStack, delay: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.stack, self.delay = stack, delay
        self.outcome = "not run"
        self.error: BaseException | None = None

    def run(self) -> None:
        from ddbsync.core import Replicator
        from ddbsync.core.connection import connect
        from ddbsync.exports.loading import load_export
        from ddbsync.exports.s3 import S3Exports

        time.sleep(self.delay)  # the writer is under way when the export is taken
        replicator = Replicator(self.stack.mappings, lambda: connect(self.stack.database_url))
        try:
            exports = S3Exports(self.stack.client("s3"), self.stack.client("dynamodb"))
            arn = exports.start("Employees", EXPORT_BUCKET, "demo")
            summary = exports.summary(*exports.wait(arn, poll=0.2))
            files = exports.data_files(summary)
            report = load_export(replicator, exports, summary, files)
            self.outcome = (
                f"export of {summary.export_time:%H:%M:%S.%f} UTC, {len(files)} data files, {report.items} items: "
                f"{report.upserted} rows written, {report.items - report.upserted - report.rejected - report.ignored} "
                f"already newer from the stream, {report.deleted} deleted, {report.rejected} rejected, "
                f"in {report.seconds:.2f} s"
            )
        except BaseException as error:  # raised by join(), in the demo's thread
            self.error = error
        finally:
            replicator.close()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


@dataclass
class Deliveries:
    """What the handler was given and did not fail: records, and each one's lag in seconds.

    Lag is from the DynamoDB write (ApproximateCreationDateTime) to the handler's return, which is
    after the commit.
    """

    applied: int = 0
    lags: list[float] = field(default_factory=list)

    def __call__(self, report: BatchReport) -> None:
        if report.failed:
            return
        self.applied += len(report.records)
        self.lags.extend(report.finished_at - r["dynamodb"]["ApproximateCreationDateTime"] for r in report.records)


@dataclass(frozen=True)
class WriteRun:
    seconds: float  # from the first write until everything was replicated
    behind: float  # how far the writer fell behind its rate, at worst


def write_while_replicating(stack: LocalStack, runners: list[StreamRunner], plan: list[Write], rate: float) -> WriteRun:
    """Write `plan` at `rate` changes per second from a thread while the runners replicate, then drain."""
    errors: list[BaseException] = []
    behind = [0.0]
    begun = time.monotonic()

    def write() -> None:
        try:
            client = stack.client("dynamodb")
            for i, request in enumerate(plan):
                request(client)
                delay = (i + 1) / rate - (time.monotonic() - begun)
                behind[0] = max(behind[0], -delay)
                time.sleep(max(0.0, delay))
        except BaseException as error:  # raised below, once the runners have stopped
            errors.append(error)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    replicate_until(runners, lambda: not writer.is_alive())
    if errors:
        raise errors[0]
    drain(runners)
    return WriteRun(time.monotonic() - begun, behind[0])


def _summary(stack: LocalStack, out: TextIO, applied: int, lags: list[float], seconds: float) -> None:
    url = stack.database_url
    print("\nemployees in PostgreSQL:", file=out)
    print_rows(out, url, EMPLOYEES)
    print("\nshop_customers (from Shop items with SK = PROFILE):", file=out)
    print_rows(out, url, "SELECT customer_id, name, email, city, zip, created_at FROM shop_customers ORDER BY 1")
    print("\nshop_orders (from Shop items with SK = ORDER#...):", file=out)
    print_rows(out, url, "SELECT customer_id, order_id, status, total, placed_at FROM shop_orders ORDER BY 1, 2")
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        # Reasons up to their first parenthesis: "no entity of Shop matches the item (PK = ...)" is one kind.
        cursor.execute(
            "SELECT split_part(reason, ' (', 1), count(*) FROM ddbsync_rejects GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        rejects = cursor.fetchall()
    connection.close()
    results = compare_with_dynamodb(stack)
    lag_ms = sorted(x * 1000 for x in lags) or [0.0]
    percentile = lambda p: lag_ms[min(len(lag_ms) - 1, int(p / 100 * len(lag_ms)))]  # noqa: E731
    print("\nSummary:", file=out)
    print(f"  stream records delivered to the handler  {applied}", file=out)
    print(f"  records rejected (kept in ddbsync_rejects) {sum(n for _, n in rejects)}", file=out)
    for reason, n in rejects[:6]:
        print(f"    {n} x {reason[:110]}", file=out)
    print(
        f"  lag, DynamoDB write to committed row     p50 {percentile(50):.0f} ms, p95 {percentile(95):.0f} ms, "
        f"mean {statistics.fmean(lag_ms):.0f} ms",
        file=out,
    )
    for result in results:
        print(f"  {_verdict(result)}", file=out)
    print(f"  finished in {seconds:.1f} s", file=out)
    if not in_step(results):
        raise SystemExit("the SQL tables do not match DynamoDB")


def _verdict(result: Comparison) -> str:
    table = f"{result.table.dynamodb_table} -> {result.table.sql_table}"
    unfit = f" ({result.unfit} items hold a value the mapping cannot take; their records are in the rejects)"
    if result.equal:
        return f"{table}: {result.actual} rows, equal to DynamoDB seen through the mapping: yes" + (
            unfit if result.unfit else ""
        )
    return (
        f"{table}: NOT equal: {len(result.missing)} missing, {len(result.unexpected)} unexpected, "
        f"{len(result.different)} different (first: {(result.missing + result.unexpected + result.different)[:3]})"
    )


__all__ = ["Deliveries", "Write", "WriteRun", "compare_with_dynamodb", "in_step", "run_demo", "write_while_replicating"]
