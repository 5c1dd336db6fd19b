"""The backfill Lambda: one queue message per data file, any order, retries safe, the export finished once."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import datetime, timedelta, timezone

import boto3
import psycopg2

from ddbsync.exports.loading import queue_messages
from ddbsync.exports.s3 import S3Exports
from tests.exports import write_export
from tests.streams import ModelTable, typed


def sqs_event(bodies: list[str]) -> dict:
    return {
        "Records": [{"messageId": f"m{i}", "body": body, "eventSource": "aws:sqs"} for i, body in enumerate(bodies)]
    }


def test_files_load_in_any_order_and_the_last_one_deletes_what_the_export_lacks(monkeypatch, aws, database, capsys):
    # Given a row the export will not hold, and an export of 3 data files in the export bucket
    sql = psycopg2.connect(database)
    sql.autocommit = True
    gone = ModelTable("Employees", ("Id",), clock=datetime.now(timezone.utc).timestamp() - 600).put({"Id": 99})
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="exports")
    items = [{"Item": typed({"Id": i, "empName": f"n{i}"})} for i in range(1, 31)]
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    folder = write_export(s3, "exports", "Employees", [items[0::3], items[1::3], items[2::3]], now)
    exports = S3Exports(s3=s3)
    summary = exports.summary("exports", folder)
    messages = queue_messages(summary, exports.data_files(summary))
    monkeypatch.setenv("DATABASE_URL", database)
    sys.modules.pop("handlers.backfill", None)
    backfill = importlib.import_module("handlers.backfill")
    assert backfill.replicator.process([gone]).retry_from is None
    # When the function gets the messages out of order, one of them twice (SQS delivers at least once)
    answers = [backfill.handler(sqs_event([body]), None) for body in (messages[2], messages[0], messages[2])]
    with sql.cursor() as cursor:
        cursor.execute("SELECT count(*), bool_or(id = 99) FROM employees")
        assert cursor.fetchone() == (20 + 1, True), "two files in, the export not finished: nothing deleted yet"
    answers.append(backfill.handler(sqs_event([messages[1]]), None))
    # Then every file loaded once, and the row the export lacked went with the last file
    assert all(answer == {"batchItemFailures": []} for answer in answers)
    with sql.cursor() as cursor:
        cursor.execute("SELECT array_agg(id ORDER BY id) FROM employees")
        assert cursor.fetchone()[0] == list(range(1, 31))
        cursor.execute("SELECT count(*) FROM ddbsync_export_files")
        assert cursor.fetchone() == (3,)
        cursor.execute("SELECT finished_at IS NOT NULL, deleted FROM ddbsync_exports")
        assert cursor.fetchone() == (True, 1)
    sql.close()
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(entry.get("message") == "data file already loaded" for entry in logged)


def test_a_damaged_file_is_reported_for_retry_and_nothing_of_it_loads(monkeypatch, aws, database):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="exports")
    items = [{"Item": typed({"Id": i, "empName": "n"})} for i in range(1, 11)]
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    folder = write_export(s3, "exports", "Employees", [items], now, bodies={0: b"not gzip"})
    exports = S3Exports(s3=s3)
    summary = exports.summary("exports", folder)
    (message,) = queue_messages(summary, exports.data_files(summary))
    monkeypatch.setenv("DATABASE_URL", database)
    sys.modules.pop("handlers.backfill", None)
    backfill = importlib.import_module("handlers.backfill")
    assert backfill.handler(sqs_event([message]), None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM employees")
        assert cursor.fetchone() == (0,)
    connection.close()
