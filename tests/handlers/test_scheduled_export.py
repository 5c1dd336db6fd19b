"""Scheduled exports: the function against moto with real export behaviour, and the pure logic beneath it.

moto's own ExportTableToPointInTime is patched in process by the local stack's `moto_exports.install()`
(real layout, ExportTime honoured, incremental exports, ListExports). Its clock (`moto_exports.now_us`) is
moved by the tests, so hours and days pass between runs in milliseconds.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
import sys
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

from ddbsync.exports.s3 import S3Exports
from ddbsync.exports.schedule import (
    ExportRecord,
    ScheduleError,
    export_prefix,
    next_fire,
    parse_expression,
    plan_full,
    plan_incremental,
    read_event,
    schedule_input,
    table_health,
)
from ddbsync.local import moto_exports

REGION, BUCKET, KEY = "us-east-1", "ddbsync-exports", "arn:aws:kms:us-east-1:123456789012:key/stack"
HOUR = timedelta(hours=1)
UTC = timezone.utc


class Clock:
    """moto's export clock (and the function's), set by the test."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def us(self) -> int:
        return int(self.at.timestamp() * 1_000_000)


@pytest.fixture
def aws(monkeypatch):
    """moto with real exports, an Employees table (stream, PITR) created at T0, the clock at T0."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DDBSYNC_EXPORT_BUCKET": BUCKET,
        "DDBSYNC_EXPORT_KMS_KEY_ARN": KEY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_exports.install()
    # The table's history (its change log) begins now, PITR a moment later; T0, a whole hour later, is where
    # the test's time begins, so every export time is inside the table's PITR window.
    clock = Clock(datetime.now(UTC) - timedelta(seconds=1))
    monkeypatch.setattr(moto_exports, "now_us", clock.us)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, "Employees")
        ddb.update_continuous_backups(
            TableName="Employees", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        t0 = clock.at = (datetime.now(UTC) + HOUR).replace(minute=0, second=0, microsecond=0)
        yield ddb, boto3.client("s3", region_name=REGION), clock, t0


def create_table(ddb, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def earliest_restorable(ddb, table: str) -> datetime:
    description = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return description["PointInTimeRecoveryDescription"]["EarliestRestorableDateTime"]


@pytest.fixture
def function(aws, monkeypatch):
    """handlers.scheduled_export imported afresh (a cold start) inside moto, on the test's clock."""
    clock = aws[2]
    sys.modules.pop("handlers.scheduled_export", None)
    module = importlib.import_module("handlers.scheduled_export")
    monkeypatch.setattr(module, "now", lambda: clock.at)
    monkeypatch.setattr(module, "sleep", lambda seconds: pytest.fail("the function waited for the export time"))
    return module


def put(aws, at: datetime, item_id: int, name: str) -> None:
    ddb, _, clock, _ = aws
    clock.at = at
    ddb.put_item(TableName="Employees", Item={"Id": {"N": str(item_id)}, "empName": {"S": name}})


def run(function, aws, scheduled: datetime, export_type: str = "INCREMENTAL_EXPORT", tables=("Employees",), **extra):
    """Invoke the function as its schedule does, a few seconds after the scheduled time."""
    aws[2].at = scheduled + timedelta(seconds=30)
    event = {**schedule_input("nightly", tables, export_type, extra.pop("window_minutes", 60)), **extra}
    event["scheduledTime"] = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    return function.handler(event, None)


def exported_ids(aws, export_arn: str) -> set[int]:
    """The item ids an export holds, read back through the one export reader."""
    exports = S3Exports(s3=aws[1], dynamodb=aws[0])
    summary = exports.summary(*exports.folder_of(export_arn))
    ids = set()
    for data_file in exports.data_files(summary):
        for line in exports.lines(summary, data_file):
            ids.add(int((line.get("Item") or line["Keys"])["Id"]["N"]))
    return ids


def describe(aws, export_arn: str) -> dict:
    return aws[0].describe_export(ExportArn=export_arn)["ExportDescription"]


def metrics(capsys) -> list[dict]:
    """The metrics (CloudWatch's embedded metric format) the function printed, one document per run."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def logged(caplog, message: str) -> list[logging.LogRecord]:
    """The function's log records starting with `message` (their fields are the records' attributes)."""
    return [r for r in caplog.records if r.name.startswith("ddbsync-scheduled-export") and r.msg.startswith(message)]


# A full export


def test_a_full_export_is_the_table_as_of_the_scheduled_time_under_its_date(aws, function):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    put(aws, t0 + timedelta(minutes=10), 1, "kept")
    put(aws, t0 + timedelta(minutes=50), 2, "also kept")
    scheduled = t0 + HOUR
    put(aws, scheduled + timedelta(seconds=5), 3, "written after the scheduled time")
    ddb.delete_item(TableName="Employees", Key={"Id": {"N": "1"}})
    # When the schedule's run comes a little later
    answer = run(function, aws, scheduled, "FULL_EXPORT")
    # Then the export is the table as it was at the scheduled time, under the scheduled date, SSE-KMS
    (started,) = answer["started"]
    export = describe(aws, started["exportArn"])
    assert export["ExportType"] == "FULL_EXPORT"
    assert export["ExportTime"] == scheduled
    assert export["S3Bucket"] == BUCKET and export["S3Prefix"] == f"Employees/{scheduled:%Y/%m/%d}"
    assert (export["S3SseAlgorithm"], export["S3SseKmsKeyId"]) == ("KMS", KEY)
    assert exported_ids(aws, started["exportArn"]) == {1, 2}
    # And a retried invocation for the same time exports nothing twice
    again = run(function, aws, scheduled, "FULL_EXPORT")
    assert again["started"] == [] and "already exported" in again["skipped"][0]["reason"]
    assert len(ddb.list_exports(TableArn=export["TableArn"])["ExportSummaries"]) == 1


def test_the_prefix_is_the_scheduled_times_utc_date():
    late_evening_in_new_york = datetime(2026, 3, 31, 22, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert export_prefix("Shop", late_evening_in_new_york) == "Shop/2026/04/01/"
    assert export_prefix("Shop", datetime(2026, 1, 2, 0, 0, tzinfo=UTC)) == "Shop/2026/01/02/"


# Incremental exports


def windows(aws, answers: list[dict]) -> list[tuple[datetime, datetime]]:
    spec = [describe(aws, a["exportArn"])["IncrementalExportSpecification"] for r in answers for a in r["started"]]
    return [(s["ExportFromTime"], s["ExportToTime"]) for s in spec]


def test_incremental_windows_chain_without_a_gap_across_runs(aws, function):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    put(aws, t0 + timedelta(minutes=10), 1, "first hour")
    first = run(function, aws, t0 + HOUR)
    put(aws, t0 + timedelta(minutes=80), 2, "second hour")
    second = run(function, aws, t0 + 2 * HOUR)
    retried = run(function, aws, t0 + 2 * HOUR)  # Scheduler or Lambda delivers a run again
    put(aws, t0 + timedelta(minutes=150), 3, "third window")
    third = run(function, aws, t0 + timedelta(hours=3, minutes=20))
    # Then each window starts where the previous one ended, the first one an hour long
    assert windows(aws, [first, second, third]) == [
        (t0, t0 + HOUR),
        (t0 + HOUR, t0 + 2 * HOUR),
        (t0 + 2 * HOUR, t0 + timedelta(hours=3, minutes=20)),
    ]
    assert retried["started"] == [] and "15 minutes" in retried["skipped"][0]["reason"]
    assert [exported_ids(aws, r["started"][0]["exportArn"]) for r in (first, second, third)] == [{1}, {2}, {3}]
    for answer in (first, second, third):
        prefix = describe(aws, answer["started"][0]["exportArn"])["S3Prefix"]
        assert prefix == "Employees/" + answer["scheduledTime"][:10].replace("-", "/")


def test_a_gap_longer_than_24_hours_is_exported_24_hours_a_run(aws, function, caplog):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    first = run(function, aws, t0 + HOUR)
    put(aws, t0 + timedelta(hours=20), 1, "in the first day of the gap")
    put(aws, t0 + timedelta(hours=28), 2, "after it")
    # When the next run comes 30 hours later (the schedule was off), and then an hour after that
    late = t0 + timedelta(hours=31)
    split = run(function, aws, late)
    after = run(function, aws, late + HOUR)
    # Then the first run after the gap exports its first 24 hours, the next the rest: still no gap
    assert windows(aws, [first, split, after]) == [
        (t0, t0 + HOUR),
        (t0 + HOUR, t0 + 25 * HOUR),
        (t0 + 25 * HOUR, late + HOUR),
    ]
    assert exported_ids(aws, split["started"][0]["exportArn"]) == {1}
    assert exported_ids(aws, after["started"][0]["exportArn"]) == {2}
    assert describe(aws, split["started"][0]["exportArn"])["S3Prefix"] == f"Employees/{late:%Y/%m/%d}"
    (warning,) = logged(caplog, "gap longer than 24 hours split")
    assert warning.remaining == "6:00:00" and warning.levelname == "WARNING"


def test_a_failed_export_is_counted_until_made_good_and_its_window_exported_again(aws, function, capsys, caplog):
    ddb, s3, clock, t0 = aws
    # Given a first run whose export fails (its bucket is not there yet)
    put(aws, t0 + timedelta(minutes=10), 1, "in the failed window")
    first = run(function, aws, t0 + HOUR)
    failed_arn = first["started"][0]["exportArn"]
    assert describe(aws, failed_arn)["ExportStatus"] == "FAILED"
    s3.create_bucket(Bucket=BUCKET)
    # When the next runs come
    second = run(function, aws, t0 + 2 * HOUR)
    third = run(function, aws, t0 + 3 * HOUR)
    # Then the second counts the failure, and exports again from where the failed window began
    runs = metrics(capsys)
    assert [m["ExportsFailed"] for m in runs] == [[0.0], [1.0], [0.0]]
    assert [m["ExportsCompleted"] for m in runs] == [[0.0], [0.0], [1.0]]
    assert [m["ExportsStarted"] for m in runs] == [[1.0], [1.0], [1.0]]
    assert all(m["schedule"] == "nightly" and m["service"] == "ddbsync-scheduled-export" for m in runs)
    assert runs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ddbsync"
    assert second["failed"] == [
        {"table": "Employees", "exportArn": failed_arn, "failure": describe_failure(aws, failed_arn)}
    ]
    (failure,) = logged(caplog, "scheduled export failed")
    assert failure.export == failed_arn and "S3NoSuchBucket" in failure.failure
    assert windows(aws, [second, third]) == [(t0, t0 + 2 * HOUR), (t0 + 2 * HOUR, t0 + 3 * HOUR)]
    assert exported_ids(aws, second["started"][0]["exportArn"]) == {1}


def describe_failure(aws, export_arn: str) -> str:
    export = describe(aws, export_arn)
    return f"{export['FailureCode']} {export['FailureMessage']}"


def test_a_scheduled_time_not_yet_restorable_is_waited_for(aws, function, monkeypatch):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.at += timedelta(seconds=seconds)

    monkeypatch.setattr(function, "sleep", sleep)
    scheduled = t0 + HOUR
    # When the function runs before the table can be restored to the scheduled time (here: 50 s before it)
    event = {
        **schedule_input("nightly", ["Employees"], "FULL_EXPORT"),
        "scheduledTime": f"{scheduled:%Y-%m-%dT%H:%M:%SZ}",
    }
    clock.at = scheduled - timedelta(seconds=50)
    answer = function.handler(event, None)
    # Then it waits and asks again, and exports as of the scheduled time
    assert waits == [30.0, 30.0]
    assert describe(aws, answer["started"][0]["exportArn"])["ExportTime"] == scheduled


def test_a_table_that_cannot_be_exported_fails_the_run_after_the_others_are_started(aws, function, capsys, caplog):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    create_table(ddb, "Unprotected")  # no PITR
    with pytest.raises(function.ExportsNotStarted, match="exports not started: Payroll, Unprotected"):
        run(function, aws, t0 + HOUR, "FULL_EXPORT", tables=("Payroll", "Unprotected", "Employees"))
    assert len(ddb.list_exports()["ExportSummaries"]) == 1, "Employees was exported"
    (published,) = metrics(capsys)
    assert published["ExportsFailed"] == [2.0] and published["ExportsStarted"] == [1.0], "published all the same"
    missing, unprotected = logged(caplog, "export not started")
    assert missing.table == "Payroll" and "ResourceNotFoundException" in missing.error
    assert unprotected.error == "point-in-time recovery is off on Unprotected: turn it on, exports need it"


def test_the_first_window_of_a_younger_table_starts_at_its_earliest_restorable_time(aws, function):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    answer = run(function, aws, t0 + HOUR, window_minutes=1440)
    whole_second = datetime.fromtimestamp(math.ceil(earliest_restorable(ddb, "Employees").timestamp()), UTC)
    assert windows(aws, [answer]) == [(whole_second, t0 + HOUR)]


def test_a_chain_older_than_the_pitr_window_goes_on_from_its_start_and_the_lost_span_is_reported(
    aws, function, capsys, caplog
):
    ddb, s3, clock, t0 = aws
    s3.create_bucket(Bucket=BUCKET)
    first = run(function, aws, t0 + HOUR)
    # When PITR no longer reaches back to the chain's end (it keeps 1 to 35 days)
    table = dynamodb_backends["123456789012"][REGION].tables["Employees"]
    table.continuous_backups["PointInTimeRecoveryDescription"]["EarliestRestorableDateTime"] = (
        t0 + 5 * HOUR
    ).timestamp()
    later = run(function, aws, t0 + 6 * HOUR)
    # Then the chain goes on from the earliest restorable time, and the span it cannot export is an error
    assert windows(aws, [first, later]) == [(t0, t0 + HOUR), (t0 + 5 * HOUR, t0 + 6 * HOUR)]
    assert [m["ExportsFailed"] for m in metrics(capsys)] == [[0.0], [1.0]]
    (error,) = logged(caplog, "changes older than the table's point-in-time recovery window")
    assert error.lost == f"{(t0 + HOUR).isoformat()}/{(t0 + 5 * HOUR).isoformat()}"


# The plan of a run, without AWS


def record(status: str, start: datetime, window: tuple[datetime, datetime] | None = None, **kw) -> ExportRecord:
    kind = "INCREMENTAL_EXPORT" if window else "FULL_EXPORT"
    return ExportRecord(f"arn:{start.isoformat()}", status, kind, start, BUCKET, "T/2026/01/01", window=window, **kw)


T = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_next_window_starts_at_the_last_completed_end_never_beside_a_running_one():
    done = record("COMPLETED", T + HOUR, (T, T + HOUR))
    failed = record("FAILED", T + 2 * HOUR, (T + HOUR, T + 2 * HOUR))
    running = record("IN_PROGRESS", T + 2 * HOUR, (T + HOUR, T + 2 * HOUR))
    assert plan_incremental([done, failed], T + 3 * HOUR, HOUR).window == (T + HOUR, T + 3 * HOUR)
    assert plan_incremental([failed], T + 3 * HOUR, HOUR).window == (T + HOUR, T + 3 * HOUR)
    assert plan_incremental([], T + 3 * HOUR, 2 * HOUR).window == (T + HOUR, T + 3 * HOUR)
    waiting = plan_incremental([done, running], T + 3 * HOUR, HOUR)
    assert not waiting.exports and "still running" in waiting.reason
    short = plan_incremental([done], T + HOUR + timedelta(minutes=14), HOUR)
    assert not short.exports and "15 minutes" in short.reason
    assert plan_incremental([done], T + HOUR + timedelta(minutes=15), HOUR).window == (T + HOUR, T + 75 * HOUR / 60)
    late = plan_incremental([done], T + 40 * HOUR, HOUR)
    assert late.window == (T + HOUR, T + 25 * HOUR) and late.remaining == 15 * HOUR
    # PITR's reach: a young table's first window starts at its earliest restorable time, a chain older is cut
    young = plan_incremental([], T + 3 * HOUR, 24 * HOUR, earliest=T + HOUR)
    assert young.window == (T + HOUR, T + 3 * HOUR) and young.lost is None
    cut = plan_incremental([done], T + 50 * HOUR, HOUR, earliest=T + 40 * HOUR)
    assert cut.window == (T + 40 * HOUR, T + 50 * HOUR) and cut.lost == (T + HOUR, T + 40 * HOUR)


def test_a_failure_counts_until_a_later_export_of_the_table_completes():
    old_failure = record("FAILED", T, export_time=T)
    done = record("COMPLETED", T + HOUR, export_time=T + HOUR)
    new_failure = record("FAILED", T + 2 * HOUR, export_time=T + 2 * HOUR, failure="S3AccessDenied")
    running = record("IN_PROGRESS", T + 3 * HOUR, export_time=T + 3 * HOUR)
    health = table_health([old_failure, done, new_failure, running])
    assert health.failed == (new_failure,) and health.in_progress == (running,) and not health.completed
    assert table_health([old_failure, done]).completed
    assert plan_full([done], T + HOUR).reason.startswith("already exported")
    assert plan_full([new_failure], T + 2 * HOUR).export_time == T + 2 * HOUR, "a failed one is made again"


@pytest.mark.parametrize(
    "event, message",
    [
        ({"tables": ["T"], "scheduledTime": "<aws.scheduler.scheduled-time>"}, "invoked by hand"),
        ({"tables": "T", "scheduledTime": "2026-01-01T00:00:00Z"}, "expected a list of table names"),
        ({"tables": ["T"], "type": "DIFF", "scheduledTime": "2026-01-01T00:00:00Z"}, "allowed values are FULL_EXPORT"),
        ({"tables": ["T"], "scheduledTime": "yesterday"}, "'yesterday' is not an ISO 8601 time"),
        ({"tables": ["T"], "scheduledTime": "2026-01-01T00:00:00Z", "windowMinutes": 5}, "windowMinutes = 5"),
        ({"scheduledTime": "2026-01-01T00:00:00Z"}, "the input needs tables and scheduledTime"),
    ],
)
def test_a_bad_input_is_refused_naming_the_field(event, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        read_event(event)


def test_the_input_carries_schedule_tables_type_window_and_scheduled_time():
    event = {**schedule_input("hourly", ["Shop"], "INCREMENTAL_EXPORT", 90), "scheduledTime": "2026-03-22T18:59:43Z"}
    parsed = read_event(event)
    assert (parsed.schedule, parsed.tables, parsed.export_type) == ("hourly", ("Shop",), "INCREMENTAL_EXPORT")
    assert parsed.scheduled_time == datetime(2026, 3, 22, 18, 59, 43, tzinfo=UTC)
    assert parsed.first_window == timedelta(minutes=90)


# When a schedule fires (for the local stack)


@pytest.mark.parametrize(
    "expression, zone, after, expected",
    [
        ("cron(0 3 * * ? *)", "UTC", "2026-05-01T03:00:00Z", "2026-05-02T03:00:00Z"),
        ("cron(0 3 * * ? *)", "Europe/Berlin", "2026-05-01T00:00:00Z", "2026-05-01T01:00:00Z"),  # CEST
        ("cron(0 3 * * ? *)", "Europe/Berlin", "2026-01-10T00:00:00Z", "2026-01-10T02:00:00Z"),  # CET
        ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z"),  # 02:30 skipped
        ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),  # once, the first
        ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
        ("cron(0/15 * * * ? *)", "UTC", "2026-05-01T10:07:10Z", "2026-05-01T10:15:00Z"),
        ("cron(5 8-10 * * ? *)", "UTC", "2026-05-01T10:05:00Z", "2026-05-02T08:05:00Z"),
        ("cron(0 10 ? * MON-FRI *)", "UTC", "2026-05-01T10:00:00Z", "2026-05-04T10:00:00Z"),  # Friday -> Monday
        ("cron(0 22 ? * FRI-MON *)", "UTC", "2026-03-25T00:00:00Z", "2026-03-27T22:00:00Z"),  # wraps past SAT
        ("cron(0 12 ? * 6L *)", "UTC", "2026-04-01T00:00:00Z", "2026-04-24T12:00:00Z"),  # last Friday
        ("cron(0 12 ? * 2#1 *)", "UTC", "2026-04-01T00:00:00Z", "2026-04-06T12:00:00Z"),  # first Monday
        ("cron(0 12 ? * L *)", "UTC", "2026-04-01T00:00:00Z", "2026-04-04T12:00:00Z"),  # Saturday
        ("cron(0 9 L * ? *)", "UTC", "2026-02-01T00:00:00Z", "2026-02-28T09:00:00Z"),
        ("cron(0 9 15W * ? *)", "UTC", "2026-02-01T00:00:00Z", "2026-02-16T09:00:00Z"),  # the 15th is a Sunday
        ("cron(0 9 1W * ? *)", "UTC", "2026-08-01T00:00:00Z", "2026-08-03T09:00:00Z"),  # the 1st is a Saturday
        ("cron(0 9 LW * ? *)", "UTC", "2026-05-01T00:00:00Z", "2026-05-29T09:00:00Z"),  # the 31st is a Sunday
        ("cron(0 0 1 JAN,JUL ? *)", "UTC", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("cron(0 0 29 2 ? *)", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("cron(0 0 1 1 ? 2030-2031)", "UTC", "2026-03-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("rate(1 hour)", "UTC", "2026-05-01T10:07:00Z", "2026-05-01T11:07:00Z"),
        ("rate(2 days)", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z"),  # 48 hours, DST or not
    ],
)
def test_next_fire_evaluates_eventbridge_expressions_in_their_time_zone(expression, zone, after, expected):
    parse = datetime.fromisoformat
    assert next_fire(expression, zone, parse(after)) == parse(expected)


def test_a_rate_counts_from_the_schedules_start_and_a_cron_can_end():
    start = datetime(2026, 5, 1, 9, 58, tzinfo=UTC)
    assert next_fire("rate(5 minutes)", "UTC", datetime(2026, 5, 1, 10, 0, tzinfo=UTC), start) == start + timedelta(
        minutes=5
    )
    assert next_fire("rate(5 minutes)", "UTC", start - HOUR, start) == start
    assert next_fire("cron(0 0 30 2 ? *)", "UTC", T) is None, "February has no 30th"
    assert next_fire("cron(0 0 1 1 ? 2026)", "UTC", T) is None


@pytest.mark.parametrize(
    "expression, message",
    [
        ("cron(0 10 * * * *)", "give `?` in exactly one of day-of-month and day-of-week"),
        ("cron(0 10 * * ?)", "six fields, not 5"),
        ("cron(60 10 * * ? *)", "minutes '60': expected 0 to 59"),
        ("cron(0 10 ? * 8 *)", "day-of-week '8': expected 1 to 7 or SUN-SAT"),
        ("cron(0 10 ? * 3#1,6#3 *)", "`#` takes one weekday and 1 to 5, alone in the field"),
        ("cron(*/0 10 * * ? *)", "a step is a positive number"),
        ("rate(0 minutes)", "a rate is at least 1 minute"),
        ("rate(1 week)", "expected rate(value unit) or cron"),
        ("at(2026-01-01T00:00:00)", "expected rate(value unit) or cron"),
    ],
)
def test_a_bad_expression_is_refused_saying_why(expression, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse_expression(expression)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ScheduleError, match="'Mars/Olympus' is not a time zone"):
        next_fire("cron(0 3 * * ? *)", "Mars/Olympus", T)


def test_an_export_made_by_hand_never_moves_the_chain_of_windows():
    # Given a scheduled window ending at 10:00, then `ddbsync export --incremental` of 10:30-10:50 by hand
    t1 = datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    hour, minute = timedelta(hours=1), timedelta(minutes=1)

    def made(arn: str, start: datetime, window: tuple[datetime, datetime], prefix: str) -> ExportRecord:
        return ExportRecord(arn, "COMPLETED", "INCREMENTAL_EXPORT", start, "bucket", prefix, window=window)

    scheduled = made("t/export/1", t1 + minute, (t1 - hour, t1), "Employees/2026/11/25")
    by_hand = made("t/export/2", t1 + 51 * minute, (t1 + 30 * minute, t1 + 50 * minute), "Employees/manual/2026/11/25")
    # Then only the schedule's own exports count: the next window starts where its chain ended
    assert scheduled.made_by_schedule("bucket", "Employees") and not by_hand.made_by_schedule("bucket", "Employees")
    mine = [r for r in (by_hand, scheduled) if r.made_by_schedule("bucket", "Employees")]
    assert plan_incremental(mine, t1 + hour, hour).window == (t1, t1 + hour)
