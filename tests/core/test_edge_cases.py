"""Edge cases a review found: each docstring tells what a user saw before; each test asserts it no longer happens."""

from __future__ import annotations

import json
import time

import pytest

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.core.replay import replay_rejects
from ddbsync.core.tombstones import purge_tombstones
from ddbsync.streams.redrive import redrive
from schema.model import MappingError, Mappings, parse_mapping
from tests.core.test_batch_contract import rejects
from tests.core.test_entities import entity_mapping, moving_mapping, rows
from tests.streams import ModelTable, raw_record, stream_arn


def plain(table: str, sql_table: str, key: dict, **attributes) -> dict:
    ((name, spec),) = key.items()
    return {
        "dynamodb_table": table,
        "sql_table": sql_table,
        "partition_key": name,
        "attributes": {name: spec, **attributes},
    }


# --- 1. COPY transport: stages of two tables whose names share their first 49 characters --------------


def test_copy_stages_of_two_long_table_names_are_one_table_and_rows_land_in_both(database, sql):
    """Two mapped tables whose names share 49 characters get ONE COPY stage (`ddbsync_stage_` + name, cut
    at 63): a batch of 2,000+ changes (the default COPY threshold) writes each table's rows into the
    other table too. A user sees rows of DynamoDB table A appear in SQL table B."""
    common = "customer_order_line_item_history_projection_table"  # 49 characters
    assert len(common) == 49
    a, _ = entity_mapping(database, plain("A", common + "_alpha", {"id": "S"}, note="S"))
    b, _ = entity_mapping(database, plain("B", common + "_bravo", {"id": "S"}, note="S"))
    mappings = Mappings((a, b))
    replicator = Replicator(mappings, lambda: connect(database))  # default COPY threshold: 2,000
    ta, tb = ModelTable("A", ("id",)), ModelTable("B", ("id",))
    batch = [ta.put({"id": f"a{i}", "note": "A"}) for i in range(1000)]
    batch += [tb.put({"id": f"b{i}", "note": "B"}) for i in range(1000)]
    result = replicator.process(batch)
    replicator.close()
    assert result.retry_from is None
    assert rows(sql, f'SELECT DISTINCT note FROM "{common}_alpha"') == [("A",)]
    assert rows(sql, f'SELECT DISTINCT note FROM "{common}_bravo"') == [("B",)]


# --- 2. key columns of an inexact type (date, timestamptz), and one placeholder in two templates ------


@pytest.mark.parametrize("sql_type", ["date", "timestamptz"])
def test_a_date_or_timestamp_key_is_refused_at_load_time(sql_type):
    """`date` and `timestamptz` were accepted for a key attribute, but distinct DynamoDB keys landed on one
    row (`2026-01-01` and `2026-01-01T10:00:00`; two offsets naming one instant, which also blocked the
    shard with SQLSTATE 21000). Such a key is now refused when the mapping loads, naming the attribute."""
    declaration = plain("Days", "days", {"day": {"type": "S", "sql": sql_type}}, note="S")
    with pytest.raises(
        MappingError, match=f"mapping Days.day: a key attribute needs an exact column type, not {sql_type}"
    ):
        parse_mapping(declaration)


def test_one_placeholder_in_both_key_templates_keeps_items_apart(database, sql):
    """`keys = { PK = "USER#{id}", SK = "USER#{id}" }` (an adjacency-list profile item) loads, but the SK's
    value silently overwrites the PK's (decode._key_parts: `parts.update`): items (USER#1, USER#2) and
    (USER#3, USER#2) become one row `id = 2`, and deleting one deletes the other's row. A user sees
    live items missing and the PK impossible to rebuild from the row."""
    declaration = {
        "dynamodb_table": "Users",
        "partition_key": "PK",
        "sort_key": "SK",
        "key_types": {"PK": "S", "SK": "S"},
        "entities": [
            {
                "name": "user",
                "sql_table": "users_adjacency",
                "keys": {"PK": "USER#{id}", "SK": "USER#{id}"},
                "key_columns": {"id": "text"},
                "attributes": {"name": "S"},
            }
        ],
    }
    try:
        source, _ = entity_mapping(database, declaration)
    except MappingError:
        return  # refused at load time: fine
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    users = ModelTable("Users", ("PK", "SK"))
    replicator.process([users.put({"PK": "USER#1", "SK": "USER#2", "name": "one"})])
    replicator.process([users.put({"PK": "USER#3", "SK": "USER#2", "name": "three"})])
    replicator.process([users.delete({"PK": "USER#3", "SK": "USER#2"})])
    replicator.close()
    assert rows(sql, "SELECT name FROM users_adjacency") == [("one",)], "(USER#1, USER#2) is still in DynamoDB"


# --- 3. routing: a move out of an entity whose template never fitted the key -------------------------

TYPED = {
    "dynamodb_table": "Items",
    "partition_key": "PK",
    "key_types": {"PK": "S"},
    "entities": [
        {
            "name": "counted",
            "sql_table": "counted_items",
            "match": {"kind": "counted"},
            "keys": {"PK": "ITEM#{number}"},
            "key_columns": {"number": "bigint"},
        },
        {
            "name": "named",
            "sql_table": "named_items",
            "match": {"kind": "named"},
            "keys": {"PK": "ITEM#{name}"},
            "key_columns": {"name": "text"},
        },
    ],
}


def test_an_item_fixed_into_the_entity_that_fits_it_lands_there(database, sql):
    """An item first written with the wrong `kind` (its key cannot be a `counted` number) is rightly
    rejected. When the application fixes its kind, the MODIFY is rejected too, for ever: decode deletes the
    item from its old entity first (decode.py:139-141), and that entity's template does not fit the key.
    A replay rejects it again. A user sees a valid item never reach `named_items`."""
    source, _ = entity_mapping(database, TYPED)
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    items = ModelTable("Items", ("PK",))
    first = replicator.process([items.put({"PK": "ITEM#abc", "kind": "counted"})])
    fixed = replicator.process([items.put({"PK": "ITEM#abc", "kind": "named"})])
    replicator.close()
    assert first.rejected == 1
    assert fixed.rejected == 0, [reason for _, _, _, reason, _ in rejects(sql)]
    assert rows(sql, "SELECT name FROM named_items") == [("abc",)]


# --- 4. rejects of attribute-routed entities do not keep their item's tombstone ----------------------


def moving(policy: str) -> dict:
    return moving_mapping(unknown_attributes=policy)


def test_a_replayed_reject_of_a_routed_entity_never_brings_back_an_item_deleted_since(database, sql):
    """The README promises a replay never resurrects. For entities told by an attribute, a decode reject
    is identified through a keys-only REMOVE, which fits every entity, so it gets no `sql_table`
    (rejects.py:73-76) and the purge (tombstones.py) drops the item's tombstone while the reject waits.
    Replaying it later brings back an item deleted in DynamoDB."""
    strict, _ = entity_mapping(database, moving("reject"))
    replicator = Replicator(Mappings((strict,)), lambda: connect(database))
    things = ModelTable("Things", ("id",))
    replicator.process([things.put({"id": "T#1", "state": "open", "size": 1})])
    assert replicator.process([things.put({"id": "T#1", "state": "open", "size": 2, "color": "red"})]).rejected == 1
    replicator.process([things.delete({"id": "T#1"})])
    replicator.close()
    with sql.cursor() as cursor:  # days later, the hourly purge
        cursor.execute("UPDATE ddbsync_tombstones SET deleted_at = now() - interval '30 days'")
        purge_tombstones(cursor)
    # The mapping then lets unknown attributes go, and the reject is replayed
    relaxed = Replicator(Mappings((parse_mapping(moving("ignore")),)), lambda: connect(database))
    replay_rejects(relaxed)
    relaxed.close()
    assert rows(sql, "SELECT id FROM open_things") == [], "T#1 was deleted in DynamoDB"


# --- 5. `unknown_attributes = "reject"` with a nested path: the map's other members vanish ------------


def test_the_reject_policy_does_not_drop_unmapped_members_of_a_mapped_map(database, sql):
    """With `unknown_attributes = "reject"` a record with an attribute the mapping does not name goes to the
    rejects table. But a member of a map whose other member is mapped (`address.city`) is dropped without
    a word: `address.zip` is in no column, no extras, no reject (model.path_roots, decode._extras).
    A user loses data the invariant "nothing silently lost" promises to keep."""
    declaration = {
        "dynamodb_table": "People",
        "sql_table": "people",
        "partition_key": "id",
        "unknown_attributes": "reject",
        "attributes": {"id": "S", "address.city": {"type": "S", "column": "city"}},
    }
    source, _ = entity_mapping(database, declaration)
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    people = ModelTable("People", ("id",))
    result = replicator.process([people.put({"id": "p", "address": {"city": "Lyon", "zip": "69001"}})])
    replicator.close()
    assert result.rejected == 1, f"stored {rows(sql, 'SELECT * FROM people')} and address.zip is gone"


# --- 6. an entity whose key is all constants ---------------------------------------------------------


def test_a_singleton_entity_of_constant_keys_is_refused_at_load_time_or_applies(database, sql):
    """`match = { PK = "CONFIG", SK = "GLOBAL" }` with no template loads (both key attributes are constants,
    so the key can be given back), but the SQL table gets no primary key and the apply statement is
    `ON CONFLICT ()`: a syntax error (42601, OTHER) on every delivery, blocking the shard at run time
    instead of failing at load time."""
    declaration = {
        "dynamodb_table": "Settings",
        "partition_key": "PK",
        "sort_key": "SK",
        "key_types": {"PK": "S", "SK": "S"},
        "entities": [
            {
                "name": "config",
                "sql_table": "settings_config",
                "match": {"PK": "CONFIG", "SK": "GLOBAL"},
                "attributes": {"theme": "S"},
            },
        ],
    }
    try:
        source, _ = entity_mapping(database, declaration)
    except MappingError:
        return  # refused at load time: fine
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    settings = ModelTable("Settings", ("PK", "SK"))
    try:
        result = replicator.process([settings.put({"PK": "CONFIG", "SK": "GLOBAL", "theme": "dark"})])
    finally:
        replicator.close()
    assert result.retry_from is None and rows(sql, "SELECT theme FROM settings_config") == [("dark",)]


# --- 7. a failover that lands on a read-only instance raises instead of waiting -----------------------


def test_a_read_only_database_during_a_failover_waits_instead_of_raising(database, sql):
    """During an Aurora failover a connection may reach the demoted writer, which answers 25006
    (read_only_sql_transaction). errors.py treats class 25 as OTHER, so the batch raises instead of
    waiting and handing the batch back (`retry_from`), although the README lists a failover as an error
    that waits. A user sees invocation errors (and error alarms) for every failover."""
    with sql.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
        cursor.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    mapping = parse_mapping(plain("Employees", "employees", {"Id": {"type": "N", "column": "id", "sql": "bigint"}}))
    replicator = Replicator(Mappings((mapping,)), lambda: connect(database))
    table = ModelTable("Employees", ("Id",))
    try:
        result = replicator.process([table.put({"Id": 1})])  # no deadline: hand the batch straight back
    finally:
        replicator.close()
    assert result.retry_from is not None


# --- 8. re-drive: empty pages inside the range end it early, and the message is deleted ---------------


class Streams:
    """DynamoDB Streams answering empty pages before the range's records, as its API reference allows."""

    def __init__(self, records, empty_pages):
        self.pages = [[] for _ in range(empty_pages)] + [records]

    def get_shard_iterator(self, **_):
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        index = int(ShardIterator.split("-")[1])
        page = self.pages[index] if index < len(self.pages) else []
        return {"Records": page, "NextShardIterator": f"it-{index + 1}"}


class Queue:
    def __init__(self, body):
        self.messages = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps(body)}]
        self.deleted = []
        self.given = False

    def receive_message(self, **_):
        if self.given:
            return {"Messages": []}
        self.given = True
        return {"Messages": list(self.messages)}

    def delete_message(self, QueueUrl, ReceiptHandle):  # noqa: N803
        self.deleted.append(ReceiptHandle)

    def change_message_visibility(self, **_):
        pass


def test_redrive_reads_the_whole_range_before_deleting_its_message(database, mappings, sql):
    """GetRecords may answer empty pages before a shard's records ("it might take multiple calls to get
    to a portion of the shard that contains stream records"). `read_range` gives up after 3 empty pages
    without checking it reached `endSequenceNumber`, re-drive applies nothing and deletes the on-failure
    message: the set-aside records are lost for good. A user sees the re-drive report success."""
    table = ModelTable("Employees", ("Id",))
    records = [table.put({"Id": i, "empName": f"e{i}"}) for i in (1, 2)]
    for record in records:
        record.pop("eventSourceARN")
    arn = stream_arn("Employees")
    info = {
        "streamArn": arn,
        "shardId": "shard-1",
        "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
        "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
    }
    queue = Queue({"DDBStreamBatchInfo": info})
    replicator = Replicator(mappings, lambda: connect(database))
    report = redrive(queue, Streams(records, empty_pages=3), "queue-url", replicator.process)
    replicator.close()
    applied = rows(sql, "SELECT id FROM employees ORDER BY id")
    assert applied == [(1,), (2,)] or (queue.deleted == [] and not report.complete), (
        f"applied {applied}, message deleted: {queue.deleted}, report complete: {report.complete}"
    )


# --- 9. a trigger of the user's that refuses a row raises P0001: the batch raises instead of rejecting -


def test_a_row_a_users_trigger_refuses_is_rejected_and_the_batch_lands(replicator, sql):
    """The README: "A change the database refuses (a CHECK constraint or trigger of the user's) is
    rejected". A PL/pgSQL trigger refuses with `RAISE EXCEPTION`, SQLSTATE P0001 (class P0), which
    errors.py classes as OTHER: `process` raises on every delivery, so one refused row blocks the shard
    (20 h of retries, then set aside; the re-drive fails the same way)."""
    with sql.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = 'bad' THEN RAISE EXCEPTION 'name bad is not allowed'; END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_bad BEFORE INSERT OR UPDATE ON employees FOR EACH ROW EXECUTE FUNCTION refuse_bad()"
        )
    table = ModelTable("Employees", ("Id",))
    result = replicator.process([table.put({"Id": 1, "empName": "bad"}), table.put({"Id": 2, "empName": "good"})])
    assert result.rejected == 1 and rows(sql, "SELECT id FROM employees") == [(2,)]


# --- 10. a key column and an attribute on one column name ---------------------------------------------


def test_a_key_column_and_an_attribute_of_one_column_name_are_refused_at_load_time():
    """The README: a mapping with a duplicate column fails at load time, naming the table and attribute.
    A placeholder column and an attribute that snake_cases to it (`customer_id` in `key_columns`,
    `customerId` in `attributes`: the id stored in the key and as an attribute, as single-table designs
    often do) loads without a word; only the attributes among themselves are checked
    (declaration._parse_attributes), never against `key_columns`."""
    declaration = {
        "dynamodb_table": "Shop2",
        "partition_key": "PK",
        "sort_key": "SK",
        "key_types": {"PK": "S", "SK": "S"},
        "entities": [
            {
                "name": "customer",
                "sql_table": "shop2_customers",
                "match": {"SK": "PROFILE"},
                "keys": {"PK": "CUSTOMER#{customer_id}"},
                "key_columns": {"customer_id": "text"},
                "attributes": {"customerId": "S"},
            }
        ],
    }
    with pytest.raises(MappingError):
        parse_mapping(declaration)


# --- 11. a rejected move leaves the item in its old entity, where its REMOVE never looks --------------


def test_an_item_deleted_after_a_rejected_move_leaves_no_row(database, sql):
    """An `open` thing is moved to `closed` by a MODIFY whose new image is rejected (size is not a
    number): decode drops the delete from `open_things` with it (decode.py:144-148 returns a Reject
    without `left`, unlike the unmatched case at :142-143). The item is then deleted in DynamoDB; the
    REMOVE's old image says `closed`, so only `closed_things` is looked at. The row stays in
    `open_things` for good, for an item DynamoDB no longer holds (a plain table would delete it)."""
    source, _ = entity_mapping(database, moving("extras"))
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    things = ModelTable("Things", ("id",))
    replicator.process([things.put({"id": "T#1", "state": "open", "size": 1})])
    assert replicator.process([things.put({"id": "T#1", "state": "closed", "size": "big"})]).rejected == 1
    replicator.process([things.delete({"id": "T#1"})])
    replicator.close()
    assert rows(sql, "SELECT id FROM open_things") == [], "T#1 is deleted in DynamoDB"


# --- the COPY transport agrees with the JSON one ---------------------------------------------------


def test_copy_stages_of_two_non_ascii_table_names_stay_apart(database, sql):
    """The stage name was cut at 36 *characters* before a digest; PostgreSQL cuts identifiers at 63
    *bytes*. For multi-byte names (63 bytes allowed) the digest was cut off, two tables sharing their
    first 24 two-byte characters shared one stage, and each table's rows were written into the other."""
    common = "é" * 30  # 60 bytes: each name below is 62 bytes, a valid PostgreSQL name
    a, _ = entity_mapping(database, plain("A", common + "_a", {"id": "S"}, note="S"))
    b, _ = entity_mapping(database, plain("B", common + "_b", {"id": "S"}, note="S"))
    replicator = Replicator(Mappings((a, b)), lambda: connect(database), copy_threshold=1)
    ta, tb = ModelTable("A", ("id",)), ModelTable("B", ("id",))
    batch = [ta.put({"id": f"a{i}", "note": "A"}) for i in range(3)]
    batch += [tb.put({"id": f"b{i}", "note": "B"}) for i in range(3)]
    result = replicator.process(batch, time.monotonic() + 30)
    replicator.close()
    assert result.retry_from is None, result
    assert rows(sql, f'SELECT DISTINCT note FROM "{common}_a"') == [("A",)]
    assert rows(sql, f'SELECT DISTINCT note FROM "{common}_b"') == [("B",)]


def test_a_number_beyond_double_precision_is_rejected_over_both_transports(database, sql):
    """A number beyond double precision (`1E+400`) was rejected over JSON (PostgreSQL's JSON refuses
    `Infinity`) but stored as Infinity over COPY. Not reachable from a real DynamoDB stream (numbers stop
    at 1E+126), only from hand-made records; the two transports must agree."""
    source, _ = entity_mapping(
        database, plain("D", "doubles", {"id": "S"}, amount={"type": "N", "sql": "double precision"})
    )
    replicator = Replicator(Mappings((source,)), lambda: connect(database), copy_threshold=1)
    batch = [raw_record("D", "INSERT", {"id": {"S": "x"}}, {"id": {"S": "x"}, "amount": {"N": "1E+400"}})]
    result = replicator.process(batch)
    replicator.close()
    assert result.retry_from is None
    assert rows(sql, "SELECT amount::text FROM doubles") == [] and result.rejected == 1, result
