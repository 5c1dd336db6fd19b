"""Stream apply throughput: ddbsync's stream handler against the seed's loop and a plain COPY + merge.

All of them run in one process against the same PostgreSQL server (default durability settings),
interleaved, best of five, on the same stream of Employees changes (60% inserts, 30% updates,
10% deletes), into a table that already holds 50,000 rows. Figures are records per second of the
whole handler call as Lambda makes it (decode, apply, commit, metrics and logs), and ratios to:
- seed loop: seed 002's handler, one INSERT/UPDATE/DELETE per record, commit per batch (without
  its per-batch `SELECT *`, which would only make it slower);
- COPY + merge: COPY the batch into a temporary table, then one upsert and one delete, no version
  guard, no rejects, no tombstones;
and, apart, what routing costs: the same changes in the single-table `Shop` (every other record a
customer, the others orders) applied by the replication core through the shipped mapping (two
entities, match rules, key templates) and through a plain one-table mapping of the same attributes
(the same paths, timestamps and numbers, `PK` and `SK` as they are), same run, interleaved.

With `--round-trip-us N`, every variant (and the routing comparison) connects through a forwarder
(`bench/forwarder.py`) that holds each chunk N/2 microseconds each way, like Lambda reaching Aurora
in one region (0.5-1 ms); the header gives the `SELECT 1` round trip measured direct and through it.
Setting up and emptying the tables between runs goes direct; only the measured work pays the delay.

    python bench/stream_apply.py [--records 20000] [--batches 100,1000,10000] [--round-trip-us 500]
    DATABASE_URL=postgresql://... python bench/stream_apply.py   # an existing server
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.forwarder import Forwarder, round_trip_seconds  # noqa: E402
from ddbsync.local.postgres import PostgresServer  # noqa: E402
from ddbsync.local.stack import load_handler  # noqa: E402
from schema.migrations import upgrade_head  # noqa: E402
from schema.model import load_mappings  # noqa: E402

SEED_TABLE = (
    "CREATE TABLE IF NOT EXISTS seed_employees (id bigint PRIMARY KEY, name varchar(20), department varchar(10))"
)


def workload(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """A consistent stream of Employees changes in Lambda's record shape."""
    rng = random.Random(seed)
    live: list[int] = []
    next_id, sequence, records = 1, 10**20, []
    for _ in range(count):
        roll = rng.random()
        sequence += 1
        if roll < 0.6 or len(live) < 10:
            key, event = next_id, "INSERT"
            next_id += 1
            live.append(key)
        elif roll < 0.9:
            key, event = rng.choice(live), "MODIFY"
        else:
            key, event = live.pop(rng.randrange(len(live))), "REMOVE"
        dynamodb: dict[str, Any] = {
            "Keys": {"Id": {"N": str(key)}},
            "SequenceNumber": str(sequence),
            "ApproximateCreationDateTime": 1_795_000_000 + sequence % 1000,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if event != "REMOVE":
            dynamodb["NewImage"] = {
                "Id": {"N": str(key)},
                "empName": {"S": f"name{rng.randrange(10**6)}"},
                "empDepartment": {"S": rng.choice(["AnyDept", "ExDept", "Ops", "Sales"])},
            }
        records.append(
            {
                "eventName": event,
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Employees/stream/x",
                "dynamodb": dynamodb,
            }
        )
    return records


def shop_workload(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """The same mix of changes in the single-table Shop: every other record a customer, the others orders."""
    rng = random.Random(seed)
    records = []
    for i, record in enumerate(workload(count, seed)):
        dynamodb = dict(record["dynamodb"])
        number = dynamodb["Keys"]["Id"]["N"]
        if i % 2 == 0:
            keys = {"PK": {"S": f"CUSTOMER#{number}"}, "SK": {"S": "PROFILE"}}
            attributes = {
                "name": {"S": f"name{rng.randrange(10**6)}"},
                "address": {"M": {"city": {"S": rng.choice(["Lyon", "Lima"])}, "zip": {"S": "69001"}}},
                "createdAt": {"S": "2026-11-25T09:00:00Z"},
            }
        else:
            keys = {"PK": {"S": f"CUSTOMER#{number}"}, "SK": {"S": f"ORDER#{number}"}}
            attributes = {"status": {"S": "paid"}, "total": {"N": f"{rng.randrange(10**5) / 100:.2f}"}}
        dynamodb["Keys"] = keys
        if "NewImage" in dynamodb:
            dynamodb["NewImage"] = {**keys, **attributes}
        records.append(
            {
                **record,
                "eventSourceARN": record["eventSourceARN"].replace("/Employees/", "/Shop/"),
                "dynamodb": dynamodb,
            }
        )
    return records


PLAIN_SHOP = {
    "dynamodb_table": "Shop",
    "sql_table": "shop_items",
    "partition_key": "PK",
    "sort_key": "SK",
    "attributes": {
        "PK": "S",
        "SK": "S",
        "name": "S",
        "address.city": {"type": "S", "column": "city"},
        "address.zip": {"type": "S", "column": "zip"},
        "createdAt": {"type": "S", "sql": "timestamptz"},
        "status": "S",
        "total": {"type": "N", "sql": "numeric(12,2)"},
    },
}


def routing_rates(
    db: str, apply_db: str, records: list[dict[str, Any]], sizes: list[int], rounds: int, existing: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Records/s of the Shop stream routed to its entities, and through a plain one-table mapping.

    Tables are set up and emptied through `db`; the replicators apply through `apply_db`.
    """
    from sqlalchemy import MetaData, create_engine

    from ddbsync.core import Replicator
    from ddbsync.core.connection import connect
    from schema.database import sqlalchemy_url
    from schema.metadata import mapped_table
    from schema.model import Mappings, parse_mapping

    plain = Mappings((parse_mapping(PLAIN_SHOP),))
    engine = create_engine(sqlalchemy_url(db))
    metadata = MetaData()
    mapped_table(metadata, plain.entities[0])
    metadata.create_all(engine)
    engine.dispose()
    replicators = {
        "routed": Replicator(load_mappings(), lambda: connect(apply_db)),
        "plain": Replicator(plain, lambda: connect(apply_db)),
    }
    best: dict[str, dict[int, float]] = {"routed": {}, "plain": {}}
    for size in sizes:
        for _ in range(rounds):
            for name, replicator in replicators.items():
                reset(db, existing)
                with psycopg2.connect(db) as connection:
                    connection.cursor().execute("TRUNCATE shop_items")
                rate = run(replicator.process, records, size)
                best[name][size] = max(best[name].get(size, 0.0), rate)
    for replicator in replicators.values():
        replicator.close()
    return best["routed"], best["plain"]


def seed_loop(connection) -> Callable[[list[dict[str, Any]]], None]:
    """Seed 002's handler body: one statement per record."""

    def apply(batch: list[dict[str, Any]]) -> None:
        cursor = connection.cursor()
        for record in batch:
            image = record["dynamodb"].get("NewImage", {})
            key = record["dynamodb"]["Keys"]["Id"]["N"]
            if record["eventName"] == "INSERT":
                cursor.execute(
                    "INSERT INTO seed_employees VALUES (%s,%s,%s)",
                    (key, image.get("empName", {}).get("S", "NA"), image.get("empDepartment", {}).get("S", "NA")),
                )
            elif record["eventName"] == "MODIFY":
                cursor.execute(
                    "UPDATE seed_employees SET name = %s, department = %s WHERE id = %s",
                    (image.get("empName", {}).get("S", "NA"), image.get("empDepartment", {}).get("S", "NA"), key),
                )
            else:
                cursor.execute("DELETE FROM seed_employees WHERE id = %s", (key,))
        connection.commit()

    return apply


def copy_merge(connection) -> Callable[[list[dict[str, Any]]], None]:
    """COPY the batch's last change per key into a temporary table, then merge it in two statements."""

    def apply(batch: list[dict[str, Any]]) -> None:
        latest: dict[str, dict[str, Any]] = {}
        for record in batch:
            latest[record["dynamodb"]["Keys"]["Id"]["N"]] = record
        buffer = io.StringIO()
        for key, record in latest.items():
            image = record["dynamodb"].get("NewImage", {})
            deleted = "t" if record["eventName"] == "REMOVE" else "f"
            name = image.get("empName", {}).get("S", "\\N")
            department = image.get("empDepartment", {}).get("S", "\\N")
            buffer.write(f"{key}\t{name}\t{department}\t{deleted}\n")
        buffer.seek(0)
        cursor = connection.cursor()
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staging (id bigint, name text, department text, deleted boolean) "
            "ON COMMIT DELETE ROWS"
        )
        cursor.copy_expert("COPY staging FROM STDIN", buffer)
        cursor.execute(
            "INSERT INTO seed_employees SELECT id, name, department FROM staging WHERE NOT deleted "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, department = EXCLUDED.department"
        )
        # = ANY(ARRAY(...)) keeps the delete on the primary key index; the temporary table has no statistics.
        cursor.execute("DELETE FROM seed_employees WHERE id = ANY(ARRAY(SELECT id FROM staging WHERE deleted))")
        connection.commit()

    return apply


def decode_rates(records: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    """Records/s of ddbsync's decode (mapping, checks, version, key) and of boto3's TypeDeserializer alone."""
    from boto3.dynamodb.types import TypeDeserializer

    from ddbsync.core.decode import decode_record

    mappings, deserializer = load_mappings(), TypeDeserializer()

    def ours() -> None:
        for i, record in enumerate(records):
            decode_record(record, i, mappings)

    def boto3_only() -> None:
        for record in records:
            image = record["dynamodb"].get("NewImage") or record["dynamodb"]["Keys"]
            {name: deserializer.deserialize(value) for name, value in image.items()}

    best = [0.0, 0.0]
    for _ in range(rounds):
        for i, function in enumerate((ours, boto3_only)):
            started = time.perf_counter()
            function()
            best[i] = max(best[i], len(records) / (time.perf_counter() - started))
    return best[0], best[1]


def run(apply: Callable[[list[dict[str, Any]]], Any], records: list[dict[str, Any]], size: int) -> float:
    """Records per second for the whole stream in batches of `size`."""
    started = time.perf_counter()
    for start in range(0, len(records), size):
        apply(records[start : start + size])
    return len(records) / (time.perf_counter() - started)


def reset(url: str, existing: int) -> None:
    """Empty the tables, then fill them with `existing` rows the workload never touches, and analyze.

    A replica in service is not empty, and the planner needs statistics to choose index lookups.
    """
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE employees, shop_customers, shop_orders, ddbsync_tombstones, ddbsync_rejects, seed_employees"
        )
        cursor.execute(
            "INSERT INTO employees (id, name, department, _ddb_version) "
            "SELECT 10000000 + g, 'existing', 'Ops', 0 FROM generate_series(1, %s) AS g",
            (existing,),
        )
        cursor.execute(
            "INSERT INTO seed_employees SELECT 10000000 + g, 'existing', 'Ops' FROM generate_series(1, %s) AS g",
            (existing,),
        )
    connection = psycopg2.connect(url)
    connection.autocommit = True
    # Not the tombstones: analyzed while empty, PostgreSQL would plan them as always empty.
    connection.cursor().execute("VACUUM ANALYZE employees, seed_employees")
    connection.close()


def fresh_database(url: str, name: str) -> str:
    """A new database `name` on the server of `url`, migrated, with the seed loop's table: its URL."""
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    admin.cursor().execute(f"CREATE DATABASE {name}")
    admin.close()
    db = url.rsplit("/", 1)[0] + f"/{name}"
    upgrade_head(db)
    with psycopg2.connect(db) as connection:
        connection.cursor().execute(SEED_TABLE)
    connection.close()
    return db


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="changes per run (default 20000)")
    parser.add_argument(
        "--batches", default="100,1000,10000", help="comma-separated batch sizes (default 100,1000,10000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best counts (default 5)")
    parser.add_argument("--existing", type=int, default=50_000, help="rows already in the table (default 50000)")
    parser.add_argument(
        "--round-trip-us",
        type=int,
        default=0,
        help="connect through a forwarder adding this round trip, half each way (default 0: direct)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.batches.split(",")]
    except ValueError:
        parser.error("--batches takes comma-separated integers, e.g. 100,1000")
    if args.round_trip_us < 0:
        parser.error("--round-trip-us takes a number of microseconds, 0 or more")

    server = forwarder = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        server = PostgresServer().start()
        url = server.url
    try:
        db = fresh_database(url, "ddbsync_bench")

        # The measured connections go to `apply_db`: the server itself, or the forwarder in front of it.
        apply_db = db
        direct_trip = round_trip_seconds(db)
        round_trip = f"SELECT 1 round trip {direct_trip * 1e6:,.0f} us direct"
        if args.round_trip_us:
            target = urlsplit(db)
            forwarder = Forwarder(target.hostname or "127.0.0.1", target.port or 5432, args.round_trip_us / 2).start()
            apply_db = forwarder.url(db)
            through = round_trip_seconds(apply_db)
            round_trip += (
                f", {through * 1e6:,.0f} us through the forwarder ({args.round_trip_us / 2:,.0f} us each way): "
                "every variant connects through it"
            )

        records = workload(args.records)
        shop_records = shop_workload(args.records)
        os.environ["DATABASE_URL"] = apply_db
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        stream = load_handler()  # handlers.stream.handler, as Lambda calls it: metrics and logs included
        sink = open(os.devnull, "w")

        def handler(batch: list[dict[str, Any]]) -> None:
            with redirect_stdout(sink):  # the EMF metrics Lambda would send to CloudWatch
                stream({"Records": batch}, None)

        plain = psycopg2.connect(apply_db)
        # name -> (apply, the stream it applies)
        variants = {
            "ddbsync": (handler, records),
            "seed loop": (seed_loop(plain), records),
            "COPY + merge": (copy_merge(plain), records),
        }
        print(
            f"{args.records} changes per run into a table of {args.existing} rows, best of {args.rounds} "
            f"interleaved rounds, PostgreSQL at {db.split('@')[-1]}\n{round_trip}"
        )
        for size in sizes:
            best = {name: 0.0 for name in variants}
            for _ in range(args.rounds):
                for name, (apply, stream_records) in variants.items():
                    reset(db, args.existing)
                    best[name] = max(best[name], run(apply, stream_records, size))
            ours = best["ddbsync"]
            print(f"\nbatch {size}:")
            for name, rate in best.items():
                print(f"  {name:<14} {rate:>10,.0f} records/s   ddbsync = {ours / rate:5.2f}x")
        sys.modules["handlers.stream"].replicator.close()
        plain.close()
        routed, plain_rate = routing_rates(db, apply_db, shop_records, sizes, args.rounds, args.existing)
        for size in sizes:
            ratio = routed[size] / plain_rate[size]
            print(
                f"\nrouting, batch {size}: Shop into customers and orders {routed[size]:,.0f} records/s, "
                f"into one plain table {plain_rate[size]:,.0f} records/s: routed = {ratio:.2f}x"
            )
        ours, boto3_only = decode_rates(records, args.rounds)
        print(
            f"\ndecode only: ddbsync {ours:,.0f} records/s (mapping, checks, version, key), "
            f"boto3 TypeDeserializer {boto3_only:,.0f} records/s (values only): {ours / boto3_only:.2f}x"
        )
    finally:
        if forwarder is not None:
            forwarder.stop()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
