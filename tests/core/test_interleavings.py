"""Appliers racing over the same items converge: whatever the interleaving, SQL ends equal to DynamoDB.

The stream, a rejects replay, a re-drive and (later) a backfill can all touch one item at once,
each in its own transaction. Each runs serializable, so PostgreSQL aborts whichever would break a
serial order (40001), and the loser waits and tries again.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddbsync.core import Replicator
from ddbsync.core.apply import Applier
from ddbsync.core.connection import connect
from ddbsync.core.decode import decode_record
from ddbsync.core.version import stream_version
from tests.core.test_batch_contract import employees, key_of
from tests.core.test_convergence import actual_rows, expected_rows, histories, history_records
from tests.streams import ModelTable


def deliver_concurrently(database: str, mappings, plans: list[list[list[dict]]], copy_threshold: int) -> None:
    """Each plan's batches through a replicator of its own, all plans at once, as racing appliers do."""
    errors: list[BaseException] = []

    def deliver(batches: list[list[dict]]) -> None:
        replicator = Replicator(mappings, lambda: connect(database), copy_threshold=copy_threshold)
        try:
            for batch in batches:
                assert replicator.process(batch, time.monotonic() + 30).retry_from is None
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            replicator.close()

    threads = [threading.Thread(target=deliver, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[0]


def tombstones(sql) -> list[tuple]:
    with sql.cursor() as cursor:
        cursor.execute("SELECT item_key, version FROM ddbsync_tombstones ORDER BY item_key")
        return cursor.fetchall()


def test_an_older_upsert_racing_a_delete_does_not_bring_the_row_back(database, mappings, sql):
    table = ModelTable("Employees", ("Id",))
    insert, update = table.put({"Id": 1, "empName": "v100"}), table.put({"Id": 1, "empName": "v200"})
    remove = table.delete({"Id": 1})
    first = Replicator(mappings, lambda: connect(database))
    assert first.process([insert]).rejected == 0

    # The REMOVE (newest) is applied in a transaction that stays open ...
    holder = connect(database)
    with holder.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        (removal,) = decode_record(remove, 0, mappings)
        Applier().apply(cursor, mappings.for_sql_table("employees"), [removal])
    # ... while an older upsert (a replayed reject, say) starts and blocks on the deleted row.
    late = Replicator(mappings, lambda: connect(database))
    outcome = []
    racer = threading.Thread(target=lambda: outcome.append(late.process([update], time.monotonic() + 30)))
    racer.start()
    time.sleep(0.5)
    holder.commit()
    racer.join(timeout=30)
    holder.close()
    late.close()
    first.close()

    assert outcome and outcome[0].retry_from is None
    assert employees(sql) == [], "the item is gone in DynamoDB"
    assert tombstones(sql) == [(key_of(1), remove_version(remove))]


def remove_version(record) -> int:
    return stream_version(record["dynamodb"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=histories, seed=st.integers(0, 2**32))
def test_concurrent_appliers_with_random_histories_converge(database, mappings, sql, copy_threshold, operations, seed):
    """Three appliers deliver the same history at once, each in its own random batches and order."""
    with sql.cursor() as cursor:
        cursor.execute("TRUNCATE employees, ddbsync_tombstones, ddbsync_rejects")
    table, records = history_records(operations)
    rng = random.Random(seed)
    plans = []
    for _ in range(3):
        shuffled = records[:]
        rng.shuffle(shuffled)  # out of order: each applier may see any change first
        # Up to three batches of random sizes that together hold every record.
        cuts = sorted(rng.sample(range(1, len(shuffled)), k=max(0, min(2, len(shuffled) - 1)))) + [len(shuffled)]
        plans.append([shuffled[a:b] for a, b in zip([0, *cuts], cuts)])

    deliver_concurrently(database, mappings, plans, copy_threshold)
    assert actual_rows(sql) == expected_rows(table)


def test_the_replicators_sessions_are_serializable(replicator):
    with replicator.connection().cursor() as cursor:
        cursor.execute("SHOW default_transaction_isolation")
        assert cursor.fetchone() == ("serializable",)
    assert isinstance(replicator.connection(), psycopg2.extensions.connection)


BIG_KEYS = [
    "a",
    "é" * 3,
    "".join(chr(0x4E00 + i) for i in range(682)),  # 2,046 bytes: about the largest partition key
    "".join(chr(0x5E00 + i) for i in range(682)),
]
readings = st.integers(0, 20)  # the table refuses 13 (a CHECK constraint of the user's)
event_ops = st.one_of(
    st.builds(lambda k, r: ("put", {"id": k, "datetime": "t", "reading": r}), st.sampled_from(BIG_KEYS), readings),
    st.builds(lambda k: ("delete", {"id": k, "datetime": "t"}), st.sampled_from(BIG_KEYS)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(event_ops, min_size=1, max_size=30), seed=st.integers(0, 2**32))
def test_big_non_ascii_keys_and_refused_changes_converge_under_concurrent_appliers(
    database, mappings, sql, copy_threshold, operations, seed
):
    with sql.cursor() as cursor:
        cursor.execute("TRUNCATE dynamotest, ddbsync_tombstones, ddbsync_rejects")
        cursor.execute("ALTER TABLE dynamotest DROP CONSTRAINT IF EXISTS no_13")
        cursor.execute("ALTER TABLE dynamotest ADD CONSTRAINT no_13 CHECK (reading <> 13)")
    source, accepted = ModelTable("dynamotest", ("id", "datetime")), ModelTable("dynamotest", ("id", "datetime"))
    records = []
    for kind, item in operations:
        record = getattr(source, kind)(item)
        if record is not None:
            records.append(record)
        if not (kind == "put" and item["reading"] == 13):
            getattr(accepted, kind)(item)  # what SQL must show: the source without the refused changes
    rng = random.Random(seed)
    plans = []
    for _ in range(2):
        shuffled = records[:]
        rng.shuffle(shuffled)
        size = rng.randint(1, 8)
        plans.append([shuffled[i : i + size] for i in range(0, len(shuffled), size)])
    deliver_concurrently(database, mappings, plans, copy_threshold)
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, reading FROM dynamotest")
        actual = sorted((key, int(reading)) for key, reading in cursor.fetchall())
    expected = sorted((key[0], item["reading"]) for key, item in accepted.items.items())
    assert actual == expected
