"""Backfill under the conditions that broke it once: a busy stream, failovers, dead loaders, old versions.

Each test reproduces a defect found in review, against the real PostgreSQL and moto S3.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

import ddbsync.exports.loading as loading
from ddbsync.core import Replicator
from ddbsync.core.backfill import Backfill
from ddbsync.core.connection import connect
from ddbsync.exports.loading import LoaderFailed, load_export
from ddbsync.exports.manifest import ExportError
from ddbsync.exports.s3 import S3Exports
from tests.core.test_backfill import NOW, export, full_lines, load_then_replay, rows, split
from tests.streams import ModelTable


def test_a_refused_value_in_a_big_file_is_rejected_not_a_crash(database, mappings, s3, sql):
    # 2,500 items (>= COPY_THRESHOLD 2000), one with a value a CHECK constraint refuses
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 2501)]
    items[100]["empName"] = "bad"
    with sql.cursor() as cursor:  # a rule of the user's that the database, not the decode, enforces
        cursor.execute("ALTER TABLE employees ADD CONSTRAINT no_bad CHECK (name <> 'bad')")
    exports, summary, files = export(s3, "Employees", [full_lines(items)], NOW - timedelta(minutes=1))
    replicator = Replicator(mappings, lambda: connect(database))  # default threshold, fresh connection
    try:
        report = load_export(replicator, exports, summary, files)
    finally:
        replicator.close()
    assert report.rejected == 1 and report.finished
    assert rows(sql, "SELECT count(*) FROM employees") == [(2499,)]


@pytest.mark.parametrize("threshold", [10**9, 1], ids=["json-autocommit", "copy-transaction"])
def test_a_stream_batch_that_waited_for_a_merge_then_applies(database, mappings, s3, sql, threshold):
    exports, summary, files = export(
        s3,
        "Employees",
        [full_lines([{"Id": i, "empName": f"n{i}"} for i in range(1, 11)])],
        NOW - timedelta(minutes=1),
    )
    loader = Replicator(mappings, lambda: connect(database))
    stream = Replicator(mappings, lambda: connect(database), copy_threshold=threshold)
    backfill = Backfill(loader, summary, len(files))
    backfill.begin()
    locked, release = threading.Event(), threading.Event()
    real_check = backfill._check_age

    def check_age_holding_the_lock(cursor):  # the merge's transaction holds the LOCK from here
        real_check(cursor)
        locked.set()
        release.wait(10)

    backfill._check_age = check_age_holding_the_lock
    thread = threading.Thread(target=backfill.load_file, args=(files[0], exports.opener(summary, files[0])))
    thread.start()
    assert locked.wait(10)
    table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() + 5)  # a change after the export
    record = table.put({"Id": 3, "empName": "stream"})
    outcome = {}
    writer = threading.Thread(target=lambda: outcome.update(r=stream.process([record])))  # no deadline: one try
    writer.start()
    time.sleep(1.0)  # the stream's statement is now waiting for the merge's lock
    release.set()
    thread.join(10)
    writer.join(10)
    result = outcome["r"]
    loader.close()
    stream.close()
    assert result.retry_from is None, f"the stream waited for the merge, then failed: {result.error}"
    assert rows(sql, "SELECT name FROM employees WHERE id = 3") == [("stream",)]


TO_OLD = "div({v}, 1e135) * 1e40 + mod({v}, 1e40)"  # what the migration's downgrade does: the old scale


def test_a_tombstone_on_the_old_scale_is_not_lowered_by_the_exports_bury(replicator, sql, s3):
    # Given, written by the replicator before the migration ran (old scale), after the export's time:
    # a put of item 3 refused (a reject waits) at +50 s, then item 3 deleted at +100 s
    table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() + 50)
    refused = table.put({"Id": 3, "empName": "z" * 30})
    assert replicator.process([refused]).rejected == 1
    table.clock = NOW.timestamp() + 100
    assert replicator.process([table.delete({"Id": 3})]).retry_from is None
    with sql.cursor() as cursor:
        cursor.execute(f"UPDATE ddbsync_tombstones SET version = {TO_OLD.format(v='version')}")
        cursor.execute(f"UPDATE ddbsync_rejects SET version = {TO_OLD.format(v='version')}")
    # When an export as of NOW (item 3 did not exist yet) is loaded, then the reject is replayed
    load_then_replay(replicator, s3, refused)
    # Then item 3, deleted at +100 s, stays deleted
    assert rows(sql, "SELECT id FROM employees ORDER BY id") == [(1,)]


def test_a_read_only_connection_is_replaced_not_retried_until_the_deadline(database, mappings, s3, sql):
    exports, summary, files = export(
        s3, "Employees", [full_lines([{"Id": 1, "empName": "a"}])], NOW - timedelta(minutes=1)
    )
    replicator = Replicator(mappings, lambda: connect(database))
    backfill = Backfill(replicator, summary, len(files))
    backfill.begin()
    real_stage = backfill._stage
    failovers = []

    def stage_then_failover(open_lines, on_items):
        staged = real_stage(open_lines, on_items)
        if not failovers:  # the first session now behaves as one on a demoted writer; a new one is fine
            failovers.append(1)
            with staged.connection.cursor() as cursor:
                cursor.execute("SET default_transaction_read_only = on")
        return staged

    backfill._stage = stage_then_failover
    started = time.monotonic()
    try:
        result = backfill.load_file(files[0], exports.opener(summary, files[0]), deadline=time.monotonic() + 8)
    finally:
        replicator.close()
    # A fresh connection (what the stream's process() does on any error) loads it at once
    assert result.attempts == 2 and time.monotonic() - started < 3
    assert rows(sql, "SELECT id FROM employees") == [(1,)]


def test_a_read_timeout_is_not_a_damaged_file_but_a_reason_to_run_again(replicator, s3):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 2001)]
    exports, summary, files = export(s3, "Employees", [full_lines(items)], NOW - timedelta(minutes=1))
    real_get = exports.s3.get_object

    def get_object(**kwargs):
        response = real_get(**kwargs)
        body, reads = response["Body"], []
        real_read = body.read

        def read(size=-1):
            reads.append(size)
            if len(reads) == 2:
                raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")
            return real_read(size)

        body.read = read
        return response

    exports.s3.get_object = get_object
    with pytest.raises(ExportError, match="reading it from S3 failed .* run again"):
        load_export(replicator, exports, summary, files)


def test_a_worker_killed_mid_file_stops_the_backfill(database, mappings, s3, monkeypatch):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 301)]
    exports, summary, files = export(s3, "Employees", split(full_lines(items), 3), NOW - timedelta(minutes=1))
    victim = files[1].key
    real = loading._load_one

    def load_one(backfill, exports, summary, data_file, on_items):
        if data_file.key == victim:
            os._exit(137)  # as SIGKILL from the OOM killer would: no message on the results queue
        return real(backfill, exports, summary, data_file, on_items)

    monkeypatch.setattr(loading, "_load_one", load_one)
    replicator = Replicator(mappings, lambda: connect(database))

    def fresh():
        return Replicator(mappings, lambda: connect(database)), S3Exports(
            s3=boto3.client("s3", region_name="us-east-1")
        )

    outcome = {}

    def run():
        try:
            outcome["report"] = load_export(replicator, exports, summary, files, workers=2, fresh=fresh)
        except LoaderFailed as error:
            outcome["failed"] = str(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "load_export still waits for the dead worker's result after 30 s"
    assert "failed" in outcome
