"""Keys of any legal size, changes the database refuses, rejects that are always written, safe replays."""

from __future__ import annotations

import json
import random

import pytest

from ddbsync.core.replay import replay_rejects
from ddbsync.core.tombstones import purge_tombstones
from tests.core.test_batch_contract import employees, key_of, rejects
from tests.core.test_replay import wider_employees
from tests.streams import ModelTable, raw_record

CJK = [chr(c) for c in range(0x4E00, 0x9FA5)]


@pytest.fixture
def table() -> ModelTable:
    return ModelTable("Employees", ("Id",))


def cjk(rng: random.Random, characters: int) -> str:
    """Random CJK text (three UTF-8 bytes a character) that no index compression shrinks."""
    return "".join(rng.choice(CJK) for _ in range(characters))


def refuse(sql, check: str) -> None:
    with sql.cursor() as cursor:
        cursor.execute(f"ALTER TABLE employees ADD CONSTRAINT refused CHECK ({check})")


def test_a_largest_non_ascii_partition_key_is_inserted_and_removed(replicator, sql):
    events = ModelTable("dynamotest", ("id", "datetime"))
    key = {"id": cjk(random.Random(1), 682), "datetime": "t"}  # 2,046 bytes: DynamoDB allows 2,048
    assert replicator.process([events.put({**key, "reading": 1})]).rejected == 0
    result = replicator.process([events.delete(key)])
    assert result.response() == {"batchItemFailures": []} and result.rejected == 0
    with sql.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM dynamotest")
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT length(item_key) FROM ddbsync_tombstones")
        assert cursor.fetchone() == (64,), "a tombstone's key is a digest, whatever the key's size"


def test_a_key_too_big_to_index_is_rejected_and_the_rest_of_its_batch_applies(replicator, sql):
    events = ModelTable("dynamotest", ("id", "datetime"))
    rng = random.Random(2)
    huge = {"id": cjk(rng, 682), "datetime": cjk(rng, 341), "reading": 1}  # 2,046 + 1,023 bytes
    batch = [events.put({"id": "small", "datetime": "t", "reading": 2}), events.put(huge)]
    result = replicator.process(batch)
    assert result.response() == {"batchItemFailures": []} and result.rejected == 1
    ((table, _, _, reason, _),) = rejects(sql)
    assert table == "dynamotest" and reason.startswith("database refused the row: 54000 index row size")
    with sql.cursor() as cursor:
        cursor.execute("SELECT id FROM dynamotest")
        assert cursor.fetchall() == [("small",)]


def test_a_refused_last_change_falls_back_to_the_items_earlier_changes(replicator, sql, table):
    replicator.process([table.put({"Id": 1, "empName": "old"})])
    refuse(sql, "name <> 'forbidden'")
    batch = [table.delete({"Id": 1}), table.put({"Id": 1, "empName": "forbidden"}), table.put({"Id": 2})]
    result = replicator.process(batch)
    assert result.rejected == 1 and result.rejected_positions == (1,)
    assert employees(sql) == [(2, None, None)], "the REMOVE still deletes the row, as in separate batches"
    with sql.cursor() as cursor:
        cursor.execute("SELECT item_key FROM ddbsync_tombstones")
        assert cursor.fetchall() == [(key_of(1),)]


def test_a_refused_change_between_accepted_ones_leaves_the_last_accepted(replicator, sql, table):
    refuse(sql, "name <> 'forbidden'")
    batch = [table.put({"Id": 1, "empName": "a"}), table.put({"Id": 1, "empName": "b"})]
    batch.append(table.put({"Id": 1, "empName": "forbidden"}))
    assert replicator.process(batch).rejected == 1
    assert employees(sql) == [(1, "b", None)]


def test_a_record_delivered_again_adds_no_second_reject(replicator, sql, table):
    bad = table.put({"Id": 1, "empName": "x" * 30})
    replicator.process([bad])
    replicator.process([bad, table.put({"Id": 2})])
    replicator.process([bad, bad])
    assert len(rejects(sql)) == 1


def test_a_reason_holding_a_nul_is_stored_escaped(database, sql):
    from tests.core.test_batch_contract import employees_replicator

    strict = employees_replicator(database, "reject")
    record = raw_record("Employees", "INSERT", {"Id": {"N": "5"}}, {"Id": {"N": "5"}, "bad\x00name": {"S": "v"}})
    assert strict.process([record]).rejected == 1
    strict.close()
    ((_, _, _, reason, stored),) = rejects(sql)
    assert reason == "attributes not in the mapping: bad\\u0000name"
    assert "bad\x00name" in stored["dynamodb"]["NewImage"]


def test_a_lone_surrogate_is_rejected_and_kept_and_good_records_land(database, sql, table):
    from tests.core.test_batch_contract import employees_replicator

    strict = employees_replicator(database, "reject")
    surrogate = raw_record("Employees", "INSERT", {"Id": {"N": "7"}}, {"Id": {"N": "7"}, "\ud800": {"S": "v"}})
    result = strict.process([surrogate, table.put({"Id": 8, "empName": "good"})])
    strict.close()
    assert result.response() == {"batchItemFailures": []} and result.rejected == 1
    assert employees(sql) == [(8, "good", None)]
    ((_, _, _, reason, stored),) = rejects(sql)
    assert reason == "attributes not in the mapping: \\ud800"
    assert stored["dynamodb"]["NewImage"]["\ud800"] == {"S": "v"}


def test_a_reject_the_database_refuses_is_kept_as_text_and_good_records_land(replicator, sql, table):
    with sql.cursor() as cursor:  # a constraint of the user's on the rejects table
        cursor.execute("ALTER TABLE ddbsync_rejects ADD CONSTRAINT no_long CHECK (reason NOT LIKE '%exceeds%')")
    result = replicator.process([table.put({"Id": 1, "empName": "x" * 30}), table.put({"Id": 2, "empName": "ok"})])
    assert result.response() == {"batchItemFailures": []} and result.rejected == 1
    assert employees(sql) == [(2, "ok", None)]
    ((_, _, _, reason, stored),) = rejects(sql)
    assert reason == "the reject is stored as text; see its record"
    kept = json.loads(stored)
    assert "exceeds varchar(20)" in kept["reason"] and json.loads(kept["record"])["eventName"] == "INSERT"


def test_a_replay_never_brings_back_an_item_deleted_since(replicator, sql, database, table):
    # Given an INSERT rejected (name too long), then the item deleted, and days later a purge
    replicator.process([table.put({"Id": 1, "empName": "x" * 30})])
    replicator.process([table.put({"Id": 1, "empName": "short"}), table.delete({"Id": 1})])
    with sql.cursor() as cursor:
        cursor.execute("UPDATE ddbsync_tombstones SET deleted_at = now() - interval '30 days'")
        assert purge_tombstones(cursor) == 0, "the tombstone stays while an older reject of its item waits"
        cursor.execute("ALTER TABLE employees ALTER COLUMN name TYPE varchar(40)")
    # When the column is widened and the reject replayed
    widened = wider_employees(database)
    result = replay_rejects(widened)
    widened.close()
    # Then it is marked replayed, and the deleted item stays deleted
    assert (result.replayed, result.still_rejected) == (1, 0)
    assert employees(sql) == []
    with sql.cursor() as cursor:
        assert purge_tombstones(cursor) == 1, "with no reject waiting, the old tombstone goes"


def test_replay_pages_past_rejects_that_are_still_refused(replicator, sql, database, table):
    replicator.process([table.put({"Id": i, "empName": "y" * 50}) for i in range(1, 4)])  # too long even widened
    replicator.process([table.put({"Id": 9, "empName": "x" * 30})])  # fits once widened
    with sql.cursor() as cursor:
        cursor.execute("ALTER TABLE employees ALTER COLUMN name TYPE varchar(40)")
    widened = wider_employees(database)
    import ddbsync.core.replay as replay

    page = replay.PAGE
    replay.PAGE = 2  # pages of two: the first holds only rejects still refused
    try:
        result = replay_rejects(widened, limit=1)
    finally:
        replay.PAGE = page
        widened.close()
    assert (result.replayed, result.still_rejected) == (1, 3)
    assert employees(sql) == [(9, "x" * 30, None)]


def test_a_reject_refused_again_on_replay_stays_pending(replicator, sql, database, table):
    replicator.process([table.put({"Id": 1, "empName": "x" * 30})])
    with sql.cursor() as cursor:
        cursor.execute("ALTER TABLE employees ALTER COLUMN name TYPE varchar(40)")
    refuse(sql, "name NOT LIKE 'xxx%'")  # the widened mapping takes it; the database still refuses it
    widened = wider_employees(database)
    result = replay_rejects(widened)
    widened.close()
    assert (result.replayed, result.still_rejected) == (0, 1)
    with sql.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ddbsync_rejects WHERE replayed_at IS NULL")
        assert cursor.fetchone() == (1,), "nothing is marked replayed that did not apply"
