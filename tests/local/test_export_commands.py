"""`ddbsync export` and `ddbsync backfill` against the local stack: the commands a user types, real export layouts.

The local stack's moto server writes real export layouts (manifests, checksums, several gzipped data
files) and honours the export time; the command reaches it through AWS_ENDPOINT_URL like the AWS CLI.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import psycopg2
import pytest

from ddbsync.cli import main
from ddbsync.core.compare import compare
from ddbsync.local.postgres import FAST_SETTINGS, PostgresServer
from ddbsync.local.schedules import HANDLER, LocalSchedule, ScheduleRunner, load_schedules
from ddbsync.local.stack import EXPORT_BUCKET, LocalStack, load_handler
from ddbsync.streams.records import lambda_json


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    saved = dict(os.environ)
    server = PostgresServer(settings=FAST_SETTINGS).start()
    stack = LocalStack(postgres=server).start()  # points AWS_ENDPOINT_URL and DATABASE_URL at itself
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def put_employees(stack: LocalStack, ids: range) -> None:
    dynamodb = stack.client("dynamodb")
    for i in ids:
        item = {"Id": {"N": str(i)}, "empName": {"S": f"n{i}"}, "empDepartment": {"S": "Ops"}}
        dynamodb.put_item(TableName="Employees", Item=item)


def equal_to_dynamodb(stack: LocalStack) -> bool:
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName="Employees", ConsistentRead=True)
    items = [lambda_json(item) for page in pages for item in page["Items"]]
    with psycopg2.connect(stack.database_url) as connection, connection.cursor() as cursor:
        results = compare(cursor, stack.mappings, "Employees", items)
    connection.close()
    return all(r.equal for r in results)


def run(capsys: Any, *args: str, command: str = "backfill") -> tuple[int, str, str]:
    code = main([command, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_start_loads_the_table_and_a_rerun_by_arn_or_folder_changes_nothing(stack, capsys):
    put_employees(stack, range(1, 301))
    code, out, err = run(capsys, "--table", "Employees", "--start", "--bucket", EXPORT_BUCKET, "--prefix", "cli")
    assert code == 0, err
    assert "300 items" in out and "0 already in" in out
    assert equal_to_dynamodb(stack)
    arn = stack.client("dynamodb").list_exports()["ExportSummaries"][0]["ExportArn"]
    code, out, _ = run(capsys, "--table", "Employees", "--export-arn", arn)
    assert code == 0 and "0 items" in out
    bucket, folder = (
        stack.client("dynamodb").describe_export(ExportArn=arn)["ExportDescription"]["ExportManifest"],
        None,
    )
    folder = bucket.rsplit("/", 1)[0] + "/"
    code, out, _ = run(capsys, "--table", "Employees", "--export", f"s3://{EXPORT_BUCKET}/{folder}")
    assert code == 0 and "0 items" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--export", "s3://no-such-bucket/x/AWSDynamoDB/01234567890123-abcdef01/"], "no such bucket"),
        (["--export", f"s3://{EXPORT_BUCKET}/x/AWSDynamoDB/01234567890123-abcdef01/"], "no such object"),
        (["--export-arn", "arn:aws:dynamodb:us-east-1:123456789012:table/Employees/export/0-x"], "no such export"),
        (["--start", "--bucket", "no-such-bucket"], "FAILED"),
        (["--export", "not-a-url"], "is not an export folder"),
    ],
    ids=["bucket", "folder", "arn", "failed export", "url"],
)
def test_errors_a_user_meets_are_one_line_not_a_traceback(stack, capsys, args, message):
    code, _, err = run(capsys, "--table", "Employees", *args)
    assert code == 2 and "Traceback" not in err
    (problem,) = [line for line in err.splitlines() if line.startswith("ddbsync backfill:")]
    assert message in problem


def test_a_table_without_a_mapping_and_an_export_of_another_table_are_refused(stack, capsys):
    code, _, err = run(capsys, "--table", "NotMapped", "--start", "--bucket", EXPORT_BUCKET)
    assert code == 2 and "no such DynamoDB table" in err
    put_employees(stack, range(1, 3))
    run(capsys, "--table", "Employees", "--start", "--bucket", EXPORT_BUCKET)
    arn = stack.client("dynamodb").list_exports()["ExportSummaries"][0]["ExportArn"]
    code, _, err = run(capsys, "--table", "dynamotest", "--export-arn", arn)
    assert code == 2 and "is an export of Employees, not dynamotest" in err


def test_a_damaged_data_file_is_named_and_the_rest_loads(stack, capsys):
    put_employees(stack, range(1000, 1400))
    s3 = stack.client("s3")
    dynamodb = stack.client("dynamodb")
    arn = dynamodb.export_table_to_point_in_time(
        TableArn=dynamodb.describe_table(TableName="Employees")["Table"]["TableArn"], S3Bucket=EXPORT_BUCKET,
        S3Prefix="damaged", ExportFormat="DYNAMODB_JSON",
    )["ExportDescription"]["ExportArn"]  # fmt: skip
    manifest = dynamodb.describe_export(ExportArn=arn)["ExportDescription"]["ExportManifest"]
    folder = manifest.rsplit("/", 1)[0] + "/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=folder + "data/")["Contents"])
    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=keys[0])["Body"].read()
    s3.put_object(Bucket=EXPORT_BUCKET, Key=keys[0], Body=body[: len(body) // 2])  # cut short in transfer
    code, _, err = run(capsys, "--table", "Employees", "--export-arn", arn)
    assert code == 1
    assert f"refused s3://{EXPORT_BUCKET}/{keys[0]}" in err and "Traceback" not in err


def test_export_waits_and_prints_the_folder_backfill_takes(stack, capsys, tmp_path):
    put_employees(stack, range(2000, 2050))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"exportBucket": EXPORT_BUCKET}))
    code, out, err = run(capsys, "--table", "Employees", "--stack-outputs", str(outputs), "--wait", command="export")
    assert code == 0, err
    url = out.strip()
    today = datetime.now(timezone.utc)
    assert url.startswith(f"s3://{EXPORT_BUCKET}/Employees/manual/{today:%Y/%m/%d}/AWSDynamoDB/") and url.endswith("/")
    assert "COMPLETED" in err and f"ddbsync backfill --table Employees --export {url}" in err
    code, out, _ = run(capsys, "--table", "Employees", "--export", url)
    assert code == 0 and equal_to_dynamodb(stack)


def test_an_incremental_export_of_a_window(stack, capsys):
    start = datetime.now(timezone.utc)  # within point-in-time recovery's window, which began with the stack
    put_employees(stack, range(3000, 3010))
    code, out, err = run(
        capsys, "--table", "Employees", "--bucket", EXPORT_BUCKET, "--incremental", "--from", start.isoformat(),
        "--wait", command="export",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "--table", "Employees", "--export", out.strip())
    assert code == 0 and equal_to_dynamodb(stack)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--table", "Employees", "--bucket", "no-such-bucket"], "no such bucket"),
        (["--table", "NoSuchTable", "--bucket", EXPORT_BUCKET], "no such DynamoDB table"),
        (["--table", "Employees", "--bucket", EXPORT_BUCKET, "--from", "2026-11-25T00:00:00Z"], "--incremental"),
    ],
    ids=["bucket", "table", "window"],
)
def test_export_problems_are_one_line(stack, capsys, args, message):
    code, _, err = run(capsys, *args, command="export")
    assert code == 2 and message in err and "Traceback" not in err


def test_an_export_of_a_table_without_point_in_time_recovery_says_so(stack, capsys):
    stack.client("dynamodb").create_table(
        TableName="NoPitr", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    code, _, err = run(capsys, "--table", "NoPitr", "--bucket", EXPORT_BUCKET, command="export")
    assert code == 2 and "point-in-time recovery is off" in err


def test_local_up_fires_the_dev_stacks_export_schedules(stack, monkeypatch):
    # Given the dev stack's schedules (Pulumi.dev.yaml), as `local up` loads them
    schedules = load_schedules(list(stack.stream_arns))
    assert {s.name for s in schedules} == {"nightly", "hourly"}
    assert all(s.document["tables"] == list(stack.stream_arns) for s in schedules)
    # When a schedule of the same shape, every minute, comes due
    monkeypatch.setenv("DDBSYNC_EXPORT_BUCKET", EXPORT_BUCKET)
    monkeypatch.delitem(sys.modules, "handlers.scheduled_export", raising=False)
    every_minute = LocalSchedule("minutely", "rate(1 minute)", "UTC", {**schedules[0].document, "tables": ["Shop"]})
    runs = []
    began = datetime.now(timezone.utc) - timedelta(seconds=59)  # started a minute ago: due in a second
    runner = ScheduleRunner([every_minute], lambda event: runs.append(load_handler(HANDLER)(event, None)), began)
    assert runner.tick() == 0, "not due yet"
    time.sleep(1.5)
    assert runner.tick() == 1
    runner.runs[0].join(60)
    # Then the scheduled export function ran, as Scheduler would run it, and the export is in the local bucket
    assert runs, "the run failed; see the log"
    day = every_minute.next_at - timedelta(minutes=1)
    listed = stack.client("s3").list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=f"Shop/{day:%Y/%m/%d}/AWSDynamoDB/")
    assert any(o["Key"].endswith("manifest-summary.json") for o in listed.get("Contents", []))
