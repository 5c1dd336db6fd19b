"""`make demo`: the seed 002 walk-through and a few thousand changes, replicated on the local stack."""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import psycopg2

from ddbsync.core.decode import decode_image
from ddbsync.local.stack import LocalStack, drain, handler_metrics_discarded, replicate_until
from ddbsync.local.stream_runner import BatchReport, StreamRunner
from schema.types import ConversionError

DEPARTMENTS = ["AnyDept", "ExDept", "Ops", "Sales", "Finance"]
NAMES = ["Akua", "Bo", "Chen", "Dara", "Émile", "Farah", "Gus", "Hana", "Ines", "Jon"]


def seed_walk_through(dynamodb: Any) -> list[tuple[str, Callable[[], Any]]]:
    """Seed 002's three AWS CLI steps, as the same DynamoDB requests."""
    return [
        (
            "put-item Id=2001 (empName Akua, empDepartment AnyDept)",
            lambda: dynamodb.put_item(
                TableName="Employees",
                Item={"Id": {"N": "2001"}, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}},
            ),
        ),
        (
            "update-item Id=2001 SET empDepartment = ExDept",
            lambda: dynamodb.update_item(
                TableName="Employees",
                Key={"Id": {"N": "2001"}},
                UpdateExpression="SET empDepartment = :newval",
                ExpressionAttributeValues={":newval": {"S": "ExDept"}},
            ),
        ),
        ("delete-item Id=2001", lambda: dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2001"}})),
    ]


def generated_changes(count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Puts, updates and deletes over a few hundred employees, with the odd value too long to fit."""
    changes: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        key = {"Id": {"N": str(rng.randrange(1, 600))}}
        roll = rng.random()
        if roll < 0.6:
            name = rng.choice(NAMES) if rng.random() > 0.01 else "A name far too long for varchar(20)"
            item = {**key, "empName": {"S": name}, "empDepartment": {"S": rng.choice(DEPARTMENTS)}}
            if rng.random() < 0.2:
                item["empLevel"] = {"N": str(rng.randrange(1, 9))}  # not mapped: lands in _ddb_extras
            changes.append(("put", item))
        elif roll < 0.85:
            changes.append(("update", key))
        else:
            changes.append(("delete", key))
    return changes


def apply_change(dynamodb: Any, kind: str, item: dict[str, Any], rng: random.Random) -> None:
    if kind == "put":
        dynamodb.put_item(TableName="Employees", Item=item)
    elif kind == "update":
        dynamodb.update_item(
            TableName="Employees",
            Key=item,
            UpdateExpression="SET empDepartment = :d",
            ExpressionAttributeValues={":d": {"S": rng.choice(DEPARTMENTS)}},
        )
    else:
        dynamodb.delete_item(TableName="Employees", Key=item)


def employees_table(database_url: str) -> list[tuple]:
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, name, department, _ddb_extras FROM employees ORDER BY id")
        return cursor.fetchall()


def print_table(out: TextIO, rows: list[tuple], limit: int = 8) -> None:
    print("    id   | name                 | department | _ddb_extras", file=out)
    for row in rows[:limit]:
        print(f"    {row[0]:<5}| {row[1] or '':<20} | {row[2] or '':<10} | {row[3] or ''}", file=out)
    if len(rows) > limit:
        print(f"    ... {len(rows) - limit} more rows", file=out)
    if not rows:
        print("    (no rows)", file=out)


def compare_with_dynamodb(stack: LocalStack) -> tuple[int, bool, int]:
    """DynamoDB scanned and seen through the mapping vs the SQL table: (items, equal?, unfit items).

    Items holding a value the mapping cannot take are left out: their records are in the rejects.
    """
    mapping = stack.mappings.for_dynamodb_table("Employees")
    expected, unfit = {}, set()
    for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName="Employees"):
        for item in page["Items"]:
            try:
                values, extras = decode_image(mapping, item)
            except ConversionError:
                unfit.add(int(item["Id"]["N"]))
                continue
            expected[values[0]] = (values[1], values[2])
    actual = {row[0]: (row[1], row[2]) for row in employees_table(stack.database_url) if row[0] not in unfit}
    return len(expected) + len(unfit), (expected == actual), len(unfit)


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
        deliveries = Deliveries()
        runners = stack.runners(deliveries)
        dynamodb = stack.client("dynamodb")
        print("Seed 002 walk-through:", file=out)
        for step, (title, request) in enumerate(seed_walk_through(dynamodb), 1):
            request()
            drain(runners)
            print(f"  {step}. aws dynamodb {title}", file=out)
            print_table(out, employees_table(stack.database_url))
        _generated(stack, runners, changes, rate, out)
        _summary(stack, out, deliveries.applied, deliveries.lags, time.monotonic() - started)
    finally:
        stack.stop()
        print("Local stack stopped.", file=out)
    return 0


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


def write_while_replicating(
    stack: LocalStack,
    runners: list[StreamRunner],
    plan: list[tuple[str, dict[str, Any]]],
    rate: float,
    rng: random.Random,
) -> WriteRun:
    """Write `plan` at `rate` changes per second from a thread while the runners replicate, then drain."""
    errors: list[BaseException] = []
    behind = [0.0]
    begun = time.monotonic()

    def write() -> None:
        try:
            client = stack.client("dynamodb")
            for i, (kind, item) in enumerate(plan):
                apply_change(client, kind, item, rng)
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


def _generated(stack: LocalStack, runners: list[StreamRunner], count: int, rate: float, out: TextIO) -> None:
    print(
        f"\n{count} generated changes at up to {rate:.0f}/s while the stream runner replicates them ...",
        file=out,
        flush=True,
    )
    rng = random.Random(2001)
    write_while_replicating(stack, runners, generated_changes(count, rng), rate, rng)


def _summary(stack: LocalStack, out: TextIO, applied: int, lags: list[float], seconds: float) -> None:
    rows = employees_table(stack.database_url)
    print(f"\nemployees in PostgreSQL ({len(rows)} rows):", file=out)
    print_table(out, rows)
    with psycopg2.connect(stack.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT reason, count(*) FROM ddbsync_rejects GROUP BY reason ORDER BY 2 DESC")
        rejects = cursor.fetchall()
    items, equal, unfit = compare_with_dynamodb(stack)
    lag_ms = sorted(x * 1000 for x in lags) or [0.0]
    percentile = lambda p: lag_ms[min(len(lag_ms) - 1, int(p / 100 * len(lag_ms)))]  # noqa: E731
    print("\nSummary:", file=out)
    print(f"  stream records delivered to the handler  {applied}", file=out)
    print(f"  records rejected (kept in ddbsync_rejects) {sum(n for _, n in rejects)}", file=out)
    for reason, n in rejects:
        print(f"    {n} x {reason}", file=out)
    print(
        f"  lag, DynamoDB write to committed row     p50 {percentile(50):.0f} ms, p95 {percentile(95):.0f} ms, "
        f"mean {statistics.fmean(lag_ms):.0f} ms",
        file=out,
    )
    verdict = "yes" if equal else "NO"
    print(
        f"  DynamoDB items {items}, of which {unfit} hold a value the mapping cannot take; "
        f"SQL rows equal to the other {items - unfit}: {verdict}",
        file=out,
    )
    print(f"  finished in {seconds:.1f} s", file=out)
    if verdict != "yes":
        raise SystemExit("the SQL table does not match DynamoDB")
