"""Versions, tombstones, rejects and the ReportBatchItemFailures contract, on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json

import psycopg2
import pytest

from ddbsync.core import ConfigurationError, Replicator
from ddbsync.core.connection import connect
from schema.model import Mappings, parse_mapping
from tests.streams import ModelTable, raw_record


def key_of(employee_id: int) -> str:
    """The tombstone key of an Employees item: the digest of its canonical key text."""
    return hashlib.sha256(str(employee_id).encode()).hexdigest()


def employees(sql):
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, name, department FROM employees ORDER BY id")
        return cursor.fetchall()


def rejects(sql):
    with sql.cursor() as cursor:
        cursor.execute(
            "SELECT dynamodb_table, event_name, sequence_number, reason, record FROM ddbsync_rejects ORDER BY id"
        )
        return cursor.fetchall()


def employees_replicator(database: str, policy: str) -> Replicator:
    """A replicator for an Employees mapping of id and name only, with the given unknown-attribute policy."""
    mapping = parse_mapping(
        {
            "dynamodb_table": "Employees",
            "sql_table": "employees",
            "partition_key": "Id",
            "unknown_attributes": policy,
            "attributes": {
                "Id": {"type": "N", "column": "id", "sql": "bigint"},
                "empName": {"type": "S", "column": "name"},
            },
        }
    )
    return Replicator(Mappings((mapping,)), lambda: connect(database))


@pytest.fixture
def table():
    return ModelTable("Employees", ("Id",))


def test_a_replayed_batch_changes_nothing(replicator, sql, table):
    batch = [table.put({"Id": i, "empName": f"n{i}", "empDepartment": "D"}) for i in range(5)]
    batch.append(table.update({"Id": 1}, {"empName": "changed"}))
    replicator.process(batch)
    first = employees(sql)
    again = replicator.process(batch)
    assert employees(sql) == first
    assert again.counts.upserted == 0 and again.counts.stale == 5


def test_an_older_change_never_overwrites_a_newer_one(replicator, sql, table):
    old = table.put({"Id": 1, "empName": "old"})
    new = table.update({"Id": 1}, {"empName": "new"})
    replicator.process([new])
    replicator.process([old])
    assert employees(sql) == [(1, "new", None)]


def test_a_late_older_insert_does_not_resurrect_a_deleted_row(replicator, sql, table):
    insert = table.put({"Id": 1, "empName": "a"})
    delete = table.delete({"Id": 1})
    replicator.process([insert, delete])
    replicator.process([insert])
    assert employees(sql) == []
    with sql.cursor() as cursor:
        cursor.execute("SELECT table_name, item_key FROM ddbsync_tombstones")
        assert cursor.fetchall() == [("employees", key_of(1))]


def test_a_newer_insert_after_a_delete_brings_the_row_back(replicator, sql, table):
    replicator.process([table.put({"Id": 1, "empName": "a"}), table.delete({"Id": 1})])
    replicator.process([table.put({"Id": 1, "empName": "again"})])
    assert employees(sql) == [(1, "again", None)]


def test_records_without_a_creation_time_are_ordered_by_sequence_number(replicator, sql):
    table = ModelTable("Employees", ("Id",), with_time=False)
    first = table.put({"Id": 1, "empName": "first"})
    second = table.update({"Id": 1}, {"empName": "second"})
    replicator.process([second])
    replicator.process([first])
    assert employees(sql) == [(1, "second", None)]


def test_bad_values_go_whole_to_rejects_and_the_rest_of_the_batch_lands(replicator, sql, table):
    good = table.put({"Id": 1, "empName": "fine"})
    too_long = table.put({"Id": 2, "empName": "x" * 21})
    wrong_type = raw_record("Employees", "INSERT", {"Id": {"N": "3"}}, {"Id": {"N": "3"}, "empName": {"N": "5"}})
    bad_number = raw_record("Employees", "INSERT", {"Id": {"N": "4x"}}, {"Id": {"N": "4x"}})
    fraction = raw_record("Employees", "INSERT", {"Id": {"N": "4.5"}}, {"Id": {"N": "4.5"}})
    unmapped = raw_record("Payments", "INSERT", {"pk": {"S": "p"}}, {"pk": {"S": "p"}})
    result = replicator.process([good, too_long, wrong_type, bad_number, fraction, unmapped])

    assert result.response() == {"batchItemFailures": []}
    assert result.rejected == 5
    assert employees(sql) == [(1, "fine", None)]
    stored = rejects(sql)
    assert [(r[0], r[1], r[3]) for r in stored] == [
        ("Employees", "INSERT", "attribute 'empName': value of 21 characters exceeds varchar(20)"),
        ("Employees", "INSERT", "attribute 'empName' is N, but its column name (varchar(20)) takes S"),
        ("Employees", "INSERT", "attribute 'Id': '4x' is not a number"),
        ("Employees", "INSERT", "attribute 'Id': 4.5 is not a whole number for bigint"),
        ("Payments", "INSERT", "no mapping for DynamoDB table 'Payments'"),
    ]
    assert stored[0][2] == too_long["dynamodb"]["SequenceNumber"]
    assert stored[0][4] == json.loads(json.dumps(too_long)), "the record is kept whole, for replay"


def test_reject_policy_rejects_records_with_unmapped_attributes(replicator, sql, database):
    strict_replicator = employees_replicator(database, "reject")
    table = ModelTable("Employees", ("Id",))
    result = strict_replicator.process([table.put({"Id": 1, "empName": "a", "salary": 10, "badge": 3})])
    strict_replicator.close()
    assert result.rejected == 1
    assert rejects(sql)[0][3] == "attributes not in the mapping: badge, salary"
    assert employees(sql) == []


def test_a_value_the_database_refuses_is_isolated_and_rejected(replicator, sql, table):
    with sql.cursor() as cursor:
        cursor.execute("ALTER TABLE employees ADD CONSTRAINT no_x CHECK (department <> 'X')")
    result = replicator.process(
        [
            table.put({"Id": 1, "empDepartment": "A"}),
            table.put({"Id": 2, "empDepartment": "X"}),
            table.put({"Id": 3, "empDepartment": "B"}),
        ]
    )
    assert result.response() == {"batchItemFailures": []}
    assert employees(sql) == [(1, None, "A"), (3, None, "B")]
    ((_, _, _, reason, record),) = rejects(sql)
    assert reason.startswith("database refused the row:") and "no_x" in reason
    assert record["dynamodb"]["Keys"] == {"Id": {"N": "2"}}


def test_a_lost_connection_reports_the_first_record_and_commits_nothing(replicator, sql, table):
    replicator.process([table.put({"Id": 1, "empName": "before"})])
    with sql.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ddbsync'")
    batch = [table.update({"Id": 1}, {"empName": "after"}), table.put({"Id": 2, "empName": "new"})]
    result = replicator.process(batch)
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]}
    assert employees(sql) == [(1, "before", None)]
    # Lambda delivers the batch again from the reported record; a new connection applies it.
    assert replicator.process(batch).response() == {"batchItemFailures": []}
    assert employees(sql) == [(1, "after", None), (2, "new", None)]


def test_a_serialization_failure_rolls_back_every_table_of_the_batch(replicator, sql, table):
    with sql.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END$$;"
            "CREATE TRIGGER fail BEFORE INSERT ON employees FOR EACH ROW EXECUTE FUNCTION fail()"
        )
    other = ModelTable("dynamotest", ("id", "datetime"))
    batch = [other.put({"id": "a", "datetime": "t"}), table.put({"Id": 1, "empName": "x"})]
    result = replicator.process(batch)
    assert result.retry_from == batch[0]["dynamodb"]["SequenceNumber"]
    with sql.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM dynamotest), (SELECT count(*) FROM employees)")
        assert cursor.fetchone() == (0, 0), "nothing is committed half"


def test_a_missing_table_raises_for_the_event_source_mappings_retries(replicator, sql, table):
    with sql.cursor() as cursor:
        cursor.execute("DROP TABLE employees")
    with pytest.raises(psycopg2.errors.UndefinedTable):
        replicator.process([table.put({"Id": 1})])
    assert rejects(sql) == []


def test_a_keys_only_stream_is_a_configuration_error_not_a_reject(replicator, sql):
    table = ModelTable("Employees", ("Id",), view_type="KEYS_ONLY")
    with pytest.raises(ConfigurationError, match="KEYS_ONLY carries no new image"):
        replicator.process([table.put({"Id": 1, "empName": "a"})])
    assert rejects(sql) == []


def test_new_image_view_is_enough(replicator, sql):
    table = ModelTable("Employees", ("Id",), view_type="NEW_IMAGE")
    replicator.process([table.put({"Id": 1, "empName": "a"}), table.put({"Id": 2}), table.delete({"Id": 2})])
    assert employees(sql) == [(1, "a", None)]


def test_ignore_policy_drops_unmapped_attributes_and_keeps_the_row(sql, database):
    replicator = employees_replicator(database, "ignore")
    table = ModelTable("Employees", ("Id",))
    result = replicator.process([table.put({"Id": 1, "empName": "a", "salary": 10})])
    replicator.close()
    assert result.rejected == 0
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, name, _ddb_extras FROM employees")
        assert cursor.fetchall() == [(1, "a", None)]


def test_expired_tombstones_are_purged_and_recent_ones_kept(replicator, sql, table, database, mappings):
    replicator.process([table.put({"Id": 1}), table.delete({"Id": 1}), table.put({"Id": 2}), table.delete({"Id": 2})])
    with sql.cursor() as cursor:
        cursor.execute(
            "UPDATE ddbsync_tombstones SET deleted_at = now() - interval '3 days' WHERE item_key = %s", (key_of(1),)
        )
    cold_start = Replicator(mappings, lambda: connect(database))  # a new Lambda instance purges first
    cold_start.process([table.put({"Id": 3})])
    cold_start.close()
    with sql.cursor() as cursor:
        cursor.execute("SELECT item_key FROM ddbsync_tombstones")
        assert cursor.fetchall() == [(key_of(2),)]


def test_a_nul_character_is_rejected_and_the_record_kept_byte_for_byte(replicator, sql):
    record = raw_record("Employees", "INSERT", {"Id": {"N": "5"}}, {"Id": {"N": "5"}, "empName": {"S": "a\x00b"}})
    assert replicator.process([record]).rejected == 1
    ((_, _, _, reason, stored),) = rejects(sql)
    assert reason == "attribute 'empName': string contains a NUL character, which PostgreSQL text cannot hold"
    assert stored["dynamodb"]["NewImage"]["empName"]["S"] == "a\x00b"
