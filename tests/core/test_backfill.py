"""Backfill from exports written in DynamoDB's layout: loads equal the table, converge with the stream, resume.

The exports are written by `tests/exports.py` to moto's S3, as the documentation lays them out; the
database is a real PostgreSQL, through the same core the stream handler uses.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import boto3
import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddbsync.core import Replicator
from ddbsync.core.backfill import Backfill
from ddbsync.core.compare import compare
from ddbsync.core.connection import connect
from ddbsync.core.version import write_time_version
from ddbsync.exports.loading import load_export
from ddbsync.exports.manifest import ExportError
from ddbsync.exports.s3 import S3Exports
from schema.model import Mappings
from tests.core.test_convergence import delete, put, update
from tests.core.test_entities import MOVING, entity_mapping
from tests.exports import BUCKET, gzip_lines, write_export
from tests.streams import ModelTable, typed


def export(s3: Any, table: str, files: list[list[dict]], at: datetime, **options: Any) -> tuple[Any, Any, list]:
    """Write an export and read it back as the CLI does: (reader, summary, data files)."""
    folder = write_export(s3, BUCKET, table, files, at, **options)
    exports = S3Exports(s3=s3)
    summary = exports.summary(BUCKET, folder)
    return exports, summary, exports.data_files(summary)


def full_lines(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Item": typed(item)} for item in items]


def split(lines: list[dict], parts: int) -> list[list[dict]]:
    return [lines[i::parts] for i in range(parts)] + [[]]  # and an empty partition's file


def equal(sql: Any, mappings: Any, table: str, items: list[dict[str, Any]]) -> bool:
    with sql.cursor() as cursor:
        return all(c.equal for c in compare(cursor, mappings, table, [typed(item) for item in items]))


def rows(sql: Any, query: str) -> list[tuple]:
    with sql.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_a_full_export_of_every_type_loads_equal_to_the_table(replicator, sql, mappings, s3):
    items = [
        {
            "id": f"sensor-{i}",
            "datetime": f"2026-11-25T10:{i:02d}:00Z",
            "reading": Decimal("12345678901234567890.123456789012345678") if i % 2 else -i,
            "tags": {"a", f"t{i}"},
            "payload": {"n": 10**37 + i, "b": b"\x00\xff", "list": [1, "x", {"deep": None}], "flag": True},
            "blob": b"\x01\x02" * i,
        }
        for i in range(1, 60)
    ]
    exports, summary, files = export(s3, "dynamotest", split(full_lines(items), 3), NOW - timedelta(minutes=5))
    report = load_export(replicator, exports, summary, files)
    assert report.finished and report.items == len(items) and report.rejected == 0
    assert equal(sql, mappings, "dynamotest", items)


def test_a_rerun_skips_every_file_and_changes_nothing(replicator, sql, s3):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 200)]
    exports, summary, files = export(s3, "Employees", split(full_lines(items), 4), NOW - timedelta(minutes=5))
    load_export(replicator, exports, summary, files)
    before = rows(sql, "SELECT id, name, _ddb_version, _ddb_synced_at FROM employees ORDER BY id")
    again = load_export(replicator, exports, summary, files)
    assert again.skipped == len(files) and again.items == 0 and again.finished
    assert rows(sql, "SELECT id, name, _ddb_version, _ddb_synced_at FROM employees ORDER BY id") == before


def test_a_crash_mid_file_commits_nothing_of_it_and_the_rerun_resumes(replicator, sql, mappings, s3):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 301)]
    exports, summary, files = export(s3, "Employees", split(full_lines(items), 3), NOW - timedelta(minutes=5))

    class Crash(Exception):
        pass

    real = exports.opener

    def crashing(summary: Any, data_file: Any) -> Any:
        def lines():
            if data_file is files[1]:
                for number, line in enumerate(real(summary, data_file)()):
                    if number == 50:
                        raise Crash()
                    yield line
            else:
                yield from real(summary, data_file)()

        return lines

    exports.opener = crashing
    with pytest.raises(Crash):
        load_export(replicator, exports, summary, files)
    replicator.discard()
    assert rows(sql, "SELECT count(*) FROM employees") == [(files[0].item_count,)], "only the first file is in"
    exports.opener = real
    report = load_export(replicator, exports, summary, files)
    assert report.skipped == 1 and report.finished
    assert equal(sql, mappings, "Employees", items)
    assert rows(sql, "SELECT count(*) FROM ddbsync_export_files") == [(len(files),)]


@pytest.mark.parametrize("damage", ["truncated", "other bytes", "a line more"])
def test_a_damaged_file_is_refused_by_name_and_nothing_of_it_is_loaded(replicator, sql, s3, damage):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 101)]
    files_lines = split(full_lines(items), 2)
    good = gzip_lines(files_lines[1])
    body = {
        "truncated": good[: len(good) // 2],
        "other bytes": gzip_lines([{"Item": typed({"Id": 1000 + i, "empName": "x"})} for i in range(50)]),
        "a line more": gzip_lines(files_lines[1] + files_lines[0][:1]),
    }[damage]
    exports, summary, files = export(s3, "Employees", files_lines, NOW - timedelta(minutes=5), bodies={1: body})
    report = load_export(replicator, exports, summary, files)
    (refusal,) = report.refused
    assert refusal.startswith(f"s3://{BUCKET}/{files[1].key}: ")
    assert not report.finished, "an export with a refused file is not finished: nothing is deleted"
    loaded = {i for (i,) in rows(sql, "SELECT id FROM employees")}
    assert loaded == {i for i in range(1, 101) if i % 2 == 1}, "the first file only"
    assert rows(sql, "SELECT count(*) FROM ddbsync_export_files") == [(2,)], "the others still load"


def test_rows_the_full_export_lacks_are_deleted_unless_newer_or_waiting_as_a_reject(replicator, sql, s3):
    # Given rows replicated before: 1-3 older than the export, 4 written by the stream after it
    table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() - 600)
    old = [table.put({"Id": i, "empName": f"old{i}"}) for i in (1, 2, 3)]
    table.clock = NOW.timestamp() + 5
    newer = table.put({"Id": 4, "empName": "newer"})
    assert replicator.process(old + [newer]).retry_from is None
    # When an export as of NOW holds item 1 only, and item 5 with a name the column refuses
    items = [{"Id": 1, "empName": "one"}, {"Id": 5, "empName": "x" * 30}]
    exports, summary, files = export(s3, "Employees", split(full_lines(items), 1), NOW)
    report = load_export(replicator, exports, summary, files)
    # Then 2 and 3 are gone with tombstones, 4 (newer than the export) stays, 5 is a reject with its reason
    assert rows(sql, "SELECT id, name FROM employees ORDER BY id") == [(1, "one"), (4, "newer")]
    assert report.deleted == 2 and report.rejected == 1
    assert rows(sql, "SELECT count(*) FROM ddbsync_tombstones") == [(2,)]
    (reason,) = rows(sql, "SELECT reason FROM ddbsync_rejects")[0]
    assert "exceeds varchar(20)" in reason


def test_an_item_whose_export_line_is_rejected_keeps_its_row(replicator, sql, s3):
    table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() - 600)
    assert replicator.process([table.put({"Id": 7, "empName": "before"})]).retry_from is None
    exports, summary, files = export(s3, "Employees", [full_lines([{"Id": 7, "empName": "y" * 30}])], NOW)
    report = load_export(replicator, exports, summary, files)
    assert report.rejected == 1 and report.deleted == 0
    assert rows(sql, "SELECT id, name FROM employees") == [(7, "before")]


def test_an_incremental_export_catches_up_updates_inserts_and_deletes(replicator, sql, mappings, s3):
    # Given the table loaded from a full export an hour ago
    start = NOW - timedelta(hours=1)
    items = {i: {"Id": i, "empName": f"n{i}"} for i in range(1, 6)}
    exports, summary, files = export(s3, "Employees", [full_lines(list(items.values()))], start)
    load_export(replicator, exports, summary, files)
    # When the stream was lost since, and an incremental export sums up the hour: 1 updated, 2 deleted, 9 new
    write = int((start + timedelta(minutes=30)).timestamp() * 10**6) + 123
    lines = [
        {"Metadata": {"WriteTime": write}, "Keys": typed({"Id": 1}), "OldImage": typed(items[1]),
         "NewImage": typed({"Id": 1, "empName": "renamed"})},
        {"Metadata": {"WriteTime": write + 1}, "Keys": typed({"Id": 2}), "OldImage": typed(items[2])},
        {"Metadata": {"WriteTime": write + 2}, "Keys": typed({"Id": 9}),
         "NewImage": typed({"Id": 9, "empName": "new"})},
    ]  # fmt: skip
    exports, summary, files = export(s3, "Employees", [lines[:2], lines[2:]], NOW, incremental_from=start)
    report = load_export(replicator, exports, summary, files)
    # Then PostgreSQL holds the table as of the export's end, and nothing the export did not name is deleted
    assert report.finished and report.deleted == 1
    expected = [{"Id": 1, "empName": "renamed"}, items[3], items[4], items[5], {"Id": 9, "empName": "new"}]
    assert equal(sql, mappings, "Employees", expected)
    # And a stream record older than the incremental change loses, a newer one wins
    stream = ModelTable("Employees", ("Id",), clock=start.timestamp() + 60)
    stale = stream.put({"Id": 1, "empName": "stale"})
    stream.clock = NOW.timestamp() + 1
    fresh = stream.put({"Id": 2, "empName": "back"})
    replicator.process([stale, fresh])
    assert rows(sql, "SELECT id, name FROM employees WHERE id IN (1, 2) ORDER BY id") == [(1, "renamed"), (2, "back")]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"at": NOW - timedelta(days=3)}, "older than the tombstone retention"),
        ({"table": "Unmapped"}, "no mapping for DynamoDB table 'Unmapped'"),
    ],
)
def test_exports_that_cannot_be_loaded_safely_are_refused(replicator, s3, change, message):
    exports, summary, files = export(
        s3, change.get("table", "Employees"), [full_lines([{"Id": 1, "empName": "a"}])], change.get("at", NOW)
    )
    with pytest.raises(ExportError, match=message):
        load_export(replicator, exports, summary, files)


def test_an_old_export_loads_with_force(replicator, sql, s3):
    exports, summary, files = export(
        s3, "Employees", [full_lines([{"Id": 1, "empName": "a"}])], NOW - timedelta(days=3)
    )
    assert load_export(replicator, exports, summary, files, force=True).finished
    assert rows(sql, "SELECT id, name FROM employees") == [(1, "a")]


def test_memory_stays_flat_the_gzip_is_streamed(s3):
    # A file is read in chunks: the reader never asks S3 for a whole body at once
    lines = full_lines([{"Id": i, "empName": "n"} for i in range(20_000)])
    exports, summary, files = export(s3, "Employees", [lines], NOW)
    reads = []
    real_get = exports.s3.get_object

    def get_object(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        body = response["Body"]
        real_read = body.read
        body.read = lambda size=-1: reads.append(size) or real_read(size)
        return response

    exports.s3.get_object = get_object
    assert sum(1 for _ in exports.lines(summary, files[0])) == 20_000
    assert reads and all(0 < size <= 1 << 16 for size in reads)


# Long enough that items change on both sides of the export, whatever Hypothesis draws.
histories = st.lists(st.one_of(put, update, delete), min_size=10, max_size=40)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories, seed=st.integers(0, 2**32))
def test_backfill_beside_the_stream_converges_whatever_the_stream_delivered(database, mappings, s3, history, seed):
    """Catch-up after an outage longer than the stream keeps records: replication applied the stream up
    to some record, the records after it until some later one were trimmed (lost), the rest of the
    stream is delivered in order, duplicates and replays from an older checkpoint included, before,
    during or after the backfill of an export taken meanwhile. The end equals DynamoDB."""
    rng = random.Random(seed)
    replicator = Replicator(mappings, lambda: connect(database), copy_threshold=rng.choice([1, 10**9]))
    sql = psycopg2.connect(database)
    sql.autocommit = True
    try:
        with sql.cursor() as cursor:
            cursor.execute(
                "TRUNCATE employees, ddbsync_tombstones, ddbsync_rejects, ddbsync_exports, ddbsync_export_files"
            )
        table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() - 3600)
        cut = rng.randrange(len(history) // 4, len(history) * 3 // 4 + 1)
        records = [apply_step(table, step) for step in history[:cut]]
        export_time = datetime.fromtimestamp(int(table.clock) + 1, timezone.utc)
        snapshot = [dict(item) for item in table.items.values()]
        table.clock = export_time.timestamp() - 0.25  # later records fall in the export's second and after
        later = [apply_step(table, step) for step in history[cut:]]
        applied = rng.randrange(len(records) + 1)
        trimmed = rng.randrange(applied, len(records) + 1)
        rest = records[trimmed:] + later  # what the stream still holds, in its order
        before = rest[: rng.randrange(len(rest) + 1)]  # delivered while the backfill has not begun
        deliver(replicator, replay(rng, records[:applied]) + before)
        exports, summary, files = export(s3, "Employees", split(full_lines(snapshot), 2), export_time)
        load_export(replicator, exports, summary, files)
        deliver(replicator, replay(rng, rest, start=len(before)))
        assert equal(sql, mappings, "Employees", list(table.items.values()))
    finally:
        replicator.close()
        sql.close()


def replay(rng: random.Random, records: list[dict], start: int = 0) -> list[dict]:
    """Records from `start` on, in order, then again from an older checkpoint (as Lambda retries do)."""
    return records[start:] + records[rng.randrange(len(records) + 1) :]


def deliver(replicator: Replicator, records: list[dict]) -> None:
    for start in range(0, len(records), 5):
        assert replicator.process(records[start : start + 5]).retry_from is None


def test_an_older_reject_of_an_item_the_export_lacks_cannot_bring_it_back(replicator, sql, s3, mappings):
    # Given a put refused before the export (too long a name), and its item deleted before the export too
    table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() - 600)
    refused = table.put({"Id": 3, "empName": "z" * 30})
    assert replicator.process([refused]).rejected == 1
    table.delete({"Id": 3})  # the delete's record is lost in an outage
    # When an export without item 3 is loaded, then the refused record replays under a mapping that takes it
    load_then_replay(replicator, s3, refused)
    # Then item 3 stays deleted
    assert rows(sql, "SELECT id FROM employees ORDER BY id") == [(1,)]


def load_then_replay(replicator: Replicator, s3: Any, refused: dict[str, Any]) -> None:
    """Load an export of item 1 alone, as of NOW; then replay `refused` with a name that fits now."""
    exports, summary, files = export(s3, "Employees", [full_lines([{"Id": 1, "empName": "one"}])], NOW)
    load_export(replicator, exports, summary, files)
    replayed = copy.deepcopy(refused)
    replayed["dynamodb"]["NewImage"]["empName"] = {"S": "fits now"}
    assert replicator.process([replayed]).retry_from is None


def apply_step(table: ModelTable, step: tuple) -> dict[str, Any]:
    if step[0] == "put":
        return table.put(step[1])
    if step[0] == "update":
        return table.update(step[1], step[2])
    return table.delete(step[1])


def test_the_gzip_reader_takes_an_empty_partitions_file(s3):
    exports, summary, files = export(s3, "Employees", [[]], NOW)
    assert list(exports.lines(summary, files[0])) == []


def test_a_file_commits_while_the_stream_keeps_changing_its_items(database, mappings, s3, sql):
    # Given an export of 20,000 items, and a stream that changes random ones of them all the while
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 20_001)]
    exports, summary, files = export(s3, "Employees", [full_lines(items)], NOW - timedelta(minutes=1))
    stop, changed = threading.Event(), {}

    def stream() -> None:
        writer = Replicator(mappings, lambda: connect(database))
        table = ModelTable("Employees", ("Id",), clock=NOW.timestamp() + 1)
        rng = random.Random(5)
        while not stop.is_set():
            batch = []
            for _ in range(50):
                key = rng.randrange(1, 20_001)
                changed[key] = f"s{len(changed)}"
                batch.append(table.put({"Id": key, "empName": changed[key]}))
            assert writer.process(batch, time.monotonic() + 30).retry_from is None
        writer.close()

    thread = threading.Thread(target=stream)
    thread.start()
    # When the file loads beside it
    try:
        replicator = Replicator(mappings, lambda: connect(database))
        report = load_export(replicator, exports, summary, files)
        replicator.close()
    finally:
        stop.set()
        thread.join()
    # Then it committed (in a try or two, not retried until a deadline), and every item holds its last value
    assert report.finished and report.results[0].attempts <= 3
    expected = {item["Id"]: changed.get(item["Id"], item["empName"]) for item in items}
    assert changed and dict(rows(sql, "SELECT id, name FROM employees")) == expected


def test_each_file_checks_the_export_age_by_the_databases_clock(database, mappings, s3, sql):
    # Given a retention of 3 s and an export 2 s old: fine when the load begins ...
    retention = timedelta(seconds=3)
    replicator = Replicator(mappings, lambda: connect(database), tombstone_retention=retention)
    files_lines = [full_lines([{"Id": 1, "empName": "a"}]), full_lines([{"Id": 2, "empName": "b"}])]
    exports, summary, files = export(s3, "Employees", files_lines, datetime.now(timezone.utc) - timedelta(seconds=2))
    backfill = Backfill(replicator, summary, len(files))
    backfill.begin()
    backfill.load_file(files[0], exports.opener(summary, files[0]))
    time.sleep(1.5)
    # ... but past it by the time the second file commits: refused, as a purge may have run meanwhile
    with pytest.raises(ExportError, match="older than the tombstone retention"):
        backfill.load_file(files[1], exports.opener(summary, files[1]))
    replicator.close()
    assert rows(sql, "SELECT id FROM employees") == [(1,)]


@pytest.mark.parametrize("spell", [int, str, lambda at: {"N": str(at)}], ids=["number", "text", "typed"])
def test_an_incremental_write_time_reads_in_every_spelling(replicator, sql, s3, spell):
    at = int((NOW - timedelta(minutes=10)).timestamp() * 10**6)
    line = {"Metadata": {"WriteTime": spell(at)}, "Keys": typed({"Id": 4})}
    line["NewImage"] = typed({"Id": 4, "empName": "four"})
    exports, summary, files = export(s3, "Employees", [[line]], NOW, incremental_from=NOW - timedelta(hours=1))
    assert load_export(replicator, exports, summary, files).rejected == 0
    assert rows(sql, "SELECT _ddb_version FROM employees") == [(write_time_version(at),)]


def test_lines_that_hold_no_change_are_rejected_with_why_not_a_traceback(replicator, sql, s3):
    lines = [{"x": 1}, [1, 2], "text", {"Item": typed({"Id": 5, "empName": "ok"})}]
    exports, summary, files = export(s3, "Employees", [lines], NOW)
    report = load_export(replicator, exports, summary, files)
    assert report.finished and report.rejected == 3
    assert rows(sql, "SELECT DISTINCT reason FROM ddbsync_rejects") == [("export line holds no Item",)]
    incremental = [{"Keys": typed({"Id": 6}), "Metadata": {"WriteTime": "soon"}}]
    exports, summary, files = export(s3, "Employees", [incremental], NOW, incremental_from=NOW - timedelta(hours=1))
    assert load_export(replicator, exports, summary, files).rejected == 1
    assert rows(sql, "SELECT id FROM employees") == [(5,)]


def test_a_change_after_a_window_ending_mid_second_wins_over_the_lines(replicator, sql, s3):
    # Given an incremental window ending at S.500, with a line written at S.300
    second = int(NOW.timestamp()) - 60
    end = datetime.fromtimestamp(second + 0.5, timezone.utc)
    line = {"Metadata": {"WriteTime": second * 10**6 + 300_000}, "Keys": typed({"Id": 8})}
    line["NewImage"] = typed({"Id": 8, "empName": "line"})
    exports, summary, files = export(s3, "Employees", [[line]], end, incremental_from=end - timedelta(hours=1))
    # When the stream's change at S.900 (after the window; stream times are whole seconds) arrives first
    stream = ModelTable("Employees", ("Id",), clock=second + 0.65)
    assert replicator.process([stream.put({"Id": 8, "empName": "stream"})]).retry_from is None
    load_export(replicator, exports, summary, files)
    # Then the later change stays
    assert rows(sql, "SELECT name FROM employees") == [("stream",)]


def test_an_incremental_update_without_its_old_image_moves_the_item_between_entities(database, s3, sql):
    source, _ = entity_mapping(database, MOVING)
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    things = ModelTable("Things", ("id",), clock=NOW.timestamp() - 3600)
    assert replicator.process([things.put({"id": "T#1", "state": "open", "size": 1})]).retry_from is None
    at = int((NOW - timedelta(minutes=5)).timestamp() * 10**6)
    line = {"Metadata": {"WriteTime": at}, "Keys": typed({"id": "T#1"})}
    line["NewImage"] = typed({"id": "T#1", "state": "closed", "size": 2})  # the NEW_IMAGE view: no OldImage
    exports, summary, files = export(s3, "Things", [[line]], NOW, incremental_from=NOW - timedelta(hours=1))
    load_export(replicator, exports, summary, files)
    replicator.close()
    assert rows(sql, "SELECT id FROM open_things") == []
    assert rows(sql, "SELECT id, size FROM closed_things") == [("1", 2)]


def test_files_load_in_parallel_workers_each_once(database, mappings, s3, sql):
    items = [{"Id": i, "empName": f"n{i}"} for i in range(1, 3001)]
    exports, summary, files = export(s3, "Employees", split(full_lines(items), 5), NOW - timedelta(minutes=1))
    replicator = Replicator(mappings, lambda: connect(database))
    counted = []

    def fresh() -> tuple[Replicator, S3Exports]:
        reader = S3Exports(s3=boto3.client("s3", region_name="us-east-1"))
        return Replicator(mappings, lambda: connect(database)), reader

    report = load_export(replicator, exports, summary, files, on_items=counted.append, workers=3, fresh=fresh)
    replicator.close()
    assert report.finished and report.files == len(files) and report.items == len(items) == sum(counted)
    assert equal(sql, mappings, "Employees", items)
    assert rows(sql, "SELECT count(*) FROM ddbsync_export_files") == [(len(files),)]
