"""Every DynamoDB type arrives in PostgreSQL exactly: numbers, strings, binary, sets, documents."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from tests.streams import raw_record

KEYS = {"id": {"S": "dev-1"}, "datetime": {"S": "2026-11-23T10:00:00Z"}}


def put(replicator, **attributes):
    result = replicator.process([raw_record("dynamotest", "INSERT", KEYS, {**KEYS, **attributes})])
    assert result.rejected == 0 and result.retry_from is None
    return result


def row(sql, columns="reading, tags, payload, _ddb_extras"):
    with sql.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM dynamotest WHERE id = 'dev-1'")
        return cursor.fetchone()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12345678901234567890123456789012345678", Decimal("12345678901234567890123456789012345678")),
        ("-0.00000000000000000000000000000000000001", Decimal("-1E-38")),
        ("1E+2", Decimal("100")),
        ("-0", Decimal("0")),
        ("9.9999999999999999999999999999999999999E+125", Decimal("9.9999999999999999999999999999999999999E+125")),
    ],
)
def test_numbers_are_exact(replicator, sql, text, expected):
    put(replicator, reading={"N": text})
    (reading,) = row(sql, "reading")
    assert reading == expected


def test_strings_empty_and_unicode_survive(replicator, sql):
    put(replicator, payload={"M": {"empty": {"S": ""}, "text": {"S": "Ünïcødé ✓ 日本語 🦆"}}}, note={"S": ""})
    reading, tags, payload, extras = row(sql)
    assert payload == {"empty": "", "text": "Ünïcødé ✓ 日本語 🦆"}
    assert extras == {"note": ""}


def test_sets_become_sorted_arrays(replicator, sql):
    put(
        replicator,
        tags={"SS": ["b", "a", "ü"]},
        sizes={"NS": ["10", "2.50", "-1", "12345678901234567890123456789012345678"]},
    )
    assert row(sql, "tags, _ddb_extras->>'sizes'") == (
        ["a", "b", "ü"],
        "[-1, 2.50, 10, 12345678901234567890123456789012345678]",
    )


def test_nested_maps_and_lists_keep_exact_numbers_and_binary(replicator, sql):
    blob = bytes(range(256))
    payload = {
        "M": {
            "list": {"L": [{"N": "12345678901234567890123456789012345678"}, {"BOOL": True}, {"NULL": True}]},
            "inner": {"M": {"bin": {"B": base64.b64encode(blob).decode()}, "deep": {"L": [{"M": {}}]}}},
            "set": {"BS": [base64.b64encode(b"\x00\x01").decode()]},
        }
    }
    put(replicator, payload=payload)
    with sql.cursor() as cursor:
        cursor.execute(
            "SELECT payload->'list'->>0, payload->'list'->1, payload->'list'->2, payload->'inner'->>'bin', "
            "payload->'inner'->'deep', payload->'set' FROM dynamotest"
        )
        big, flag, nothing, binary, deep, binset = cursor.fetchone()
    assert big == "12345678901234567890123456789012345678"
    assert flag is True and nothing is None and deep == [{}]
    assert base64.b64decode(binary) == blob
    assert binset == [base64.b64encode(b"\x00\x01").decode()]


def test_binary_and_binary_sets_in_their_own_columns(replicator, sql, database):
    import psycopg2

    from ddbsync.core import Replicator
    from ddbsync.core.connection import connect
    from schema.model import Mappings, parse_mapping

    mapping = parse_mapping(
        {
            "dynamodb_table": "Blobs",
            "sql_table": "blobs",
            "partition_key": "k",
            "attributes": {"k": "B", "data": "B", "parts": "BS", "counts": "NS", "ok": "BOOL"},
        }
    )
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE blobs (k bytea PRIMARY KEY, data bytea, parts bytea[], counts numeric[], ok boolean,"
            " _ddb_extras jsonb, _ddb_version numeric NOT NULL, _ddb_synced_at timestamptz NOT NULL DEFAULT now())"
        )
    replicator = Replicator(Mappings((mapping,)), lambda: connect(database))
    key = {"k": {"B": base64.b64encode(b"\xff\x00key").decode()}}
    image = {
        **key,
        "data": {"B": base64.b64encode(b"\x00\x01\x02").decode()},
        "parts": {"BS": [base64.b64encode(b"z").decode(), base64.b64encode(b"a").decode()]},
        "counts": {"NS": ["3", "12345678901234567890123456789012345678"]},
        "ok": {"BOOL": False},
    }
    assert replicator.process([raw_record("Blobs", "INSERT", key, image)]).rejected == 0
    with sql.cursor() as cursor:
        cursor.execute("SELECT k, data, parts, counts, ok FROM blobs")
        k, data, parts, counts, ok = cursor.fetchone()
    assert bytes(k) == b"\xff\x00key" and bytes(data) == b"\x00\x01\x02"
    assert [bytes(p) for p in parts] == [b"a", b"z"]
    assert counts == [Decimal(3), Decimal("12345678901234567890123456789012345678")]
    assert ok is False
    assert replicator.process([raw_record("Blobs", "REMOVE", key)]).rejected == 0
    with sql.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM blobs")
        assert cursor.fetchone() == (0,)
    replicator.close()


def test_a_400_kb_item_is_replicated_whole(replicator, sql):
    big = "x" * 399_000
    put(replicator, payload={"M": {"body": {"S": big}}})
    with sql.cursor() as cursor:
        cursor.execute("SELECT length(payload->>'body') FROM dynamotest")
        assert cursor.fetchone() == (399_000,)


def test_null_attribute_becomes_sql_null(replicator, sql):
    put(replicator, reading={"NULL": True}, payload={"NULL": True})
    assert row(sql, "reading, payload") == (None, None)


@pytest.mark.parametrize(
    "text, expected", [("2001", 2001), ("2E+3", 2000), ("-7", -7), ("9223372036854775807", 2**63 - 1)]
)
def test_integer_columns_take_every_spelling_of_a_whole_number(replicator, sql, text, expected):
    key = {"Id": {"N": text}}
    assert replicator.process([raw_record("Employees", "INSERT", key, key)]).rejected == 0
    with sql.cursor() as cursor:
        cursor.execute("SELECT id FROM employees")
        assert cursor.fetchone() == (expected,)


def test_integer_out_of_range_is_rejected(replicator, sql):
    key = {"Id": {"N": "9223372036854775808"}}
    result = replicator.process([raw_record("Employees", "INSERT", key, key)])
    assert result.rejected == 1
    with sql.cursor() as cursor:
        cursor.execute("SELECT reason FROM ddbsync_rejects")
        assert cursor.fetchone() == ("attribute 'Id': 9223372036854775808 is out of range for bigint",)
