"""The local stack's moto server writes DynamoDB exports as DynamoDB writes them (ddbsync.local.moto_exports).

Everything is read back the way a loader written against AWS's documentation reads it: boto3, gzip, hashlib.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from ddbsync.local.moto_exports import DATA_FILES
from ddbsync.local.stack import REGION, MotoServer

BUCKET = "ddbsync-exports"
Image = dict[str, Any]


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """DynamoDB and S3 clients on the local stack's moto server, with one bucket for every export."""
    server = MotoServer().start(Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    try:
        options = dict(
            endpoint_url=server.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb, s3 = boto3.client("dynamodb", **options), boto3.client("s3", **options)
        s3.create_bucket(Bucket=BUCKET)
        yield ddb, s3
    finally:
        server.stop()


def new_table(ddb: Any) -> str:
    """A table with a composite key, a NEW_AND_OLD_IMAGES stream and PITR on; returns its ARN."""
    name = f"exports-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


def item(pk: str, sk: int, **extra: Image) -> Image:
    """An item with one attribute of every DynamoDB type, nested ones included."""
    return {
        "pk": {"S": pk},
        "sk": {"N": str(sk)},
        "big": {"N": "12345678901234567890123456789012345678"},
        "small": {"N": "-0.000000000000000000000000000000000001"},
        "blob": {"B": bytes([0, 255, sk % 256, 10])},
        "flag": {"BOOL": sk % 2 == 0},
        "nothing": {"NULL": True},
        "names": {"SS": ["a", "b", f"n{sk}"]},
        "numbers": {"NS": ["1", "2.5", "99999999999999999999999999999999999999"]},
        "blobs": {"BS": [b"\x00", b"\xff\xfe", bytes([sk % 256, 7])]},
        "doc": {
            "M": {
                "list": {"L": [{"N": "7"}, {"S": "x"}, {"B": b"\x01\x02"}, {"M": {"deep": {"SS": ["z"]}}}]},
                "text": {"S": 'ünï "quoted"\n'},
            }
        },
        **extra,
    }


def text(value: Image) -> Image:
    """An attribute value as DynamoDB JSON text has it (binary in base64), sets in a stable order."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64_text(inner)}
    if kind == "BS":
        return {"BS": sorted(map(base64_text, inner))}
    if kind in ("SS", "NS"):
        return {kind: sorted(inner)}
    if kind == "M":
        return {"M": {k: text(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [text(v) for v in inner]}
    return value


def base64_text(value: bytes | str) -> str:
    """boto3 gives binary as bytes; an export line has it already as base64 text."""
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def as_text(image: Image) -> Image:
    """A whole item, from boto3 or from an export line, in the one form both compare in."""
    return {name: text(value) for name, value in image.items()}


def manifest_time(value: str) -> datetime:
    """A manifest's `2020-11-04T07:28:34.028Z`, which must be in milliseconds."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)
    return datetime.fromisoformat(value)


def close(a: datetime, b: datetime) -> bool:
    """Equal within the milliseconds the API and the manifests keep."""
    return abs(a - b) < timedelta(milliseconds=1)


def key_of(image: Image) -> tuple[str, str]:
    return image["pk"]["S"], image["sk"]["N"]


def scan(ddb: Any, table_arn: str) -> dict[tuple[str, str], Image]:
    items = ddb.scan(TableName=table_arn.rsplit("/", 1)[1])["Items"]
    return {key_of(i): as_text(i) for i in items}


def export(ddb: Any, table_arn: str, **request: Any) -> Image:
    """Request an export and poll until it ends, as seed 001's loop does; return its description."""
    started = ddb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=BUCKET, **request)["ExportDescription"]
    assert started["ExportStatus"] == "IN_PROGRESS"
    for _ in range(50):
        summaries = ddb.list_exports()["ExportSummaries"]
        if any(s["ExportArn"] == started["ExportArn"] and s["ExportStatus"] != "IN_PROGRESS" for s in summaries):
            break
    description = ddb.describe_export(ExportArn=started["ExportArn"])["ExportDescription"]
    assert description["ExportStatus"] == "COMPLETED"
    return description


def read_export(s3: Any, description: Image) -> tuple[Image, list[Image]]:
    """The summary manifest and every data line, each checksum, ETag and count checked on the way."""

    def get(key: str) -> bytes:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    summary_key = description["ExportManifest"]
    base = summary_key.rsplit("/", 1)[0]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=base + "/")["Contents"]}
    data_keys = {k for k in keys if k.startswith(f"{base}/data/")}
    manifests = {f"manifest-{m}.{s}" for m in ("summary", "files") for s in ("json", "md5", "checksum")}
    assert keys - data_keys == {f"{base}/{name}" for name in manifests | {"_started"}}
    assert get(f"{base}/_started") == b""
    for stem in (f"{base}/manifest-summary", f"{base}/manifest-files"):
        expected = base64.b64encode(hashlib.md5(get(f"{stem}.json")).digest())
        assert get(f"{stem}.md5") == get(f"{stem}.checksum") == expected  # 24 bytes: base64 of the MD5

    summary = json.loads(get(summary_key))
    files = [json.loads(line) for line in get(summary["manifestFilesS3Key"]).decode().splitlines()]
    assert len(files) == DATA_FILES and {f["dataFileS3Key"] for f in files} == data_keys
    lines = []
    for entry in files:
        assert list(entry) == ["itemCount", "md5Checksum", "etag", "dataFileS3Key"]
        assert re.fullmatch(rf"{re.escape(base)}/data/[a-z2-7]{{26}}\.json\.gz", entry["dataFileS3Key"])
        body = get(entry["dataFileS3Key"])
        assert entry["md5Checksum"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        head = s3.head_object(Bucket=BUCKET, Key=entry["dataFileS3Key"])
        assert head["ETag"].strip('"') == entry["etag"] == hashlib.md5(hashlib.md5(body).digest()).hexdigest() + "-1"
        file_lines = [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]
        assert entry["itemCount"] == len(file_lines)
        lines += file_lines
    assert summary["itemCount"] == description["ItemCount"] == len(lines)
    return summary, lines


def test_a_full_export_has_the_real_layout_and_the_table_s_items(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    table_arn = new_table(ddb)
    for n in range(12):
        ddb.put_item(TableName=table_arn.rsplit("/", 1)[1], Item=item(f"CUSTOMER#{n % 5}", n))

    description = export(ddb, table_arn, S3Prefix="backups/2026-11")
    summary, lines = read_export(s3, description)

    export_id = description["ExportArn"].rsplit("/", 1)[1]
    assert re.fullmatch(rf"{re.escape(table_arn)}/export/\d{{14}}-[0-9a-f]{{8}}", description["ExportArn"])
    assert description["ExportManifest"] == f"backups/2026-11/AWSDynamoDB/{export_id}/manifest-summary.json"
    assert list(summary) == [
        "version", "exportArn", "startTime", "endTime", "tableArn", "tableId", "exportTime", "s3Bucket", "s3Prefix",
        "s3SseAlgorithm", "s3SseKmsKeyId", "manifestFilesS3Key", "billedSizeBytes", "itemCount", "outputFormat",
    ]  # fmt: skip
    assert summary["version"] == "2020-06-30" and summary["outputFormat"] == "DYNAMODB_JSON"
    assert (summary["exportArn"], summary["tableArn"]) == (description["ExportArn"], table_arn)
    assert (summary["s3Bucket"], summary["s3Prefix"]) == (BUCKET, "backups/2026-11")
    assert summary["manifestFilesS3Key"] == f"backups/2026-11/AWSDynamoDB/{export_id}/manifest-files.json"
    assert close(manifest_time(summary["exportTime"]), description["ExportTime"])
    assert manifest_time(summary["startTime"]) <= manifest_time(summary["endTime"])
    assert all(list(line) == ["Item"] for line in lines)
    assert {key_of(line["Item"]): as_text(line["Item"]) for line in lines} == scan(ddb, table_arn)
    big = next(line["Item"] for line in lines)["big"]
    assert big == {"N": "12345678901234567890123456789012345678"}


def test_an_empty_partition_gives_an_empty_gzip_file(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    table_arn = new_table(ddb)
    ddb.put_item(TableName=table_arn.rsplit("/", 1)[1], Item=item("ONLY", 1))

    summary, lines = read_export(s3, export(ddb, table_arn))

    files = s3.get_object(Bucket=BUCKET, Key=summary["manifestFilesS3Key"])["Body"].read().decode().splitlines()
    empty = [json.loads(f) for f in files if json.loads(f)["itemCount"] == 0]
    assert len(lines) == 1 and len(empty) == DATA_FILES - 1
    for entry in empty:
        body = s3.get_object(Bucket=BUCKET, Key=entry["dataFileS3Key"])["Body"].read()
        assert body[:2] == b"\x1f\x8b" and gzip.decompress(body) == b""


def test_an_export_time_in_the_past_gives_the_table_as_it_was(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    table_arn = new_table(ddb)
    name = table_arn.rsplit("/", 1)[1]
    for n in range(6):
        ddb.put_item(TableName=name, Item=item("P", n))
    then = scan(ddb, table_arn)
    export_time = datetime.now(timezone.utc)
    ddb.update_item(
        TableName=name,
        Key={"pk": {"S": "P"}, "sk": {"N": "1"}},
        UpdateExpression="SET big = :v REMOVE blobs",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    ddb.delete_item(TableName=name, Key={"pk": {"S": "P"}, "sk": {"N": "2"}})
    ddb.put_item(TableName=name, Item=item("P", 99))
    ddb.put_item(TableName=name, Item=item("P", 3, extra={"S": "overwritten"}))

    description = export(ddb, table_arn, ExportTime=export_time)
    summary, lines = read_export(s3, description)

    assert {key_of(line["Item"]): as_text(line["Item"]) for line in lines} == then
    assert close(manifest_time(summary["exportTime"]), export_time) and close(description["ExportTime"], export_time)
    for too_early_or_late in (export_time - timedelta(hours=1), datetime.now(timezone.utc) + timedelta(minutes=5)):
        with pytest.raises(ClientError, match="InvalidExportTimeException"):
            ddb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=BUCKET, ExportTime=too_early_or_late)


def test_an_incremental_export_has_one_line_per_item_changed_in_the_window(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    table_arn = new_table(ddb)
    name = table_arn.rsplit("/", 1)[1]
    for n in range(4):
        ddb.put_item(TableName=name, Item=item("I", n))
    before = scan(ddb, table_arn)
    start = datetime.now(timezone.utc)
    for value in ("1", "2"):  # two updates of one item: one line, the image before the window and the last one
        ddb.update_item(
            TableName=name,
            Key={"pk": {"S": "I"}, "sk": {"N": "0"}},
            UpdateExpression="SET big = :v",
            ExpressionAttributeValues={":v": {"N": value}},
        )
    ddb.delete_item(TableName=name, Key={"pk": {"S": "I"}, "sk": {"N": "1"}})
    ddb.put_item(TableName=name, Item=item("I", 50))
    after = scan(ddb, table_arn)
    end = datetime.now(timezone.utc)
    ddb.delete_item(TableName=name, Key={"pk": {"S": "I"}, "sk": {"N": "2"}})  # after the window: not exported
    window = {"ExportFromTime": start, "ExportToTime": end}

    both = export(ddb, table_arn, ExportType="INCREMENTAL_EXPORT", IncrementalExportSpecification=window)
    summary, lines = read_export(s3, both)

    assert summary["version"] == "2023-08-01"
    assert (summary["outputView"], summary["exportType"]) == ("NEW_AND_OLD_IMAGES", "INCREMENTAL_EXPORT")
    assert "exportTime" not in summary
    assert close(manifest_time(summary["exportFromTime"]), start) and close(manifest_time(summary["exportToTime"]), end)
    assert both["IncrementalExportSpecification"]["ExportViewType"] == "NEW_AND_OLD_IMAGES"
    by_key = {key_of(line["Keys"]): line for line in lines}
    assert set(by_key) == {("I", "0"), ("I", "1"), ("I", "50")}
    updated, deleted, inserted = by_key[("I", "0")], by_key[("I", "1")], by_key[("I", "50")]
    assert list(updated) == ["Metadata", "Keys", "NewImage", "OldImage"]
    assert as_text(updated["OldImage"]) == before[("I", "0")] and as_text(updated["NewImage"]) == after[("I", "0")]
    assert updated["NewImage"]["big"] == {"N": "2"}
    assert list(deleted) == ["Metadata", "Keys", "OldImage"] and as_text(deleted["OldImage"]) == before[("I", "1")]
    assert list(inserted) == ["Metadata", "Keys", "NewImage"] and as_text(inserted["NewImage"]) == after[("I", "50")]
    assert updated["Keys"] == {"pk": {"S": "I"}, "sk": {"N": "0"}}
    write_times = [line["Metadata"]["WriteTime"] for line in (updated, deleted, inserted)]
    start_us, end_us = (round(t.timestamp() * 1_000_000) for t in (start, end))
    assert all(isinstance(t, int) and start_us <= t < end_us for t in write_times)
    assert write_times == sorted(write_times) and len(set(write_times)) == 3  # microseconds, in write order

    new_only = export(
        ddb,
        table_arn,
        ExportType="INCREMENTAL_EXPORT",
        IncrementalExportSpecification={**window, "ExportViewType": "NEW_IMAGE"},
    )
    _, lines = read_export(s3, new_only)
    shapes = {key_of(line["Keys"]): list(line) for line in lines}
    assert shapes == {
        ("I", "0"): ["Metadata", "Keys", "NewImage"],
        ("I", "1"): ["Metadata", "Keys"],
        ("I", "50"): ["Metadata", "Keys", "NewImage"],
    }


def test_describe_and_list_answer_as_aws_does(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    table_arn, other_arn = new_table(ddb), new_table(ddb)
    first, second = export(ddb, table_arn), export(ddb, table_arn, S3Prefix="daily")
    export(ddb, other_arn)

    listed = ddb.list_exports(TableArn=table_arn)["ExportSummaries"]
    arns = sorted((first["ExportArn"], second["ExportArn"]), reverse=True)
    assert listed == [{"ExportArn": arn, "ExportStatus": "COMPLETED", "ExportType": "FULL_EXPORT"} for arn in arns]
    assert {first["ExportArn"], second["ExportArn"]} <= {s["ExportArn"] for s in ddb.list_exports()["ExportSummaries"]}
    page = ddb.list_exports(TableArn=table_arn, MaxResults=1)
    rest = ddb.list_exports(TableArn=table_arn, MaxResults=1, NextToken=page["NextToken"])
    assert page["ExportSummaries"] + rest["ExportSummaries"] == listed and "NextToken" not in rest

    assert first["TableArn"] == table_arn and first["ExportFormat"] == "DYNAMODB_JSON"
    assert first["ExportType"] == "FULL_EXPORT" and first["S3Bucket"] == BUCKET and "S3Prefix" not in first
    assert first["ItemCount"] == 0 and first["StartTime"] <= first["EndTime"] and first["ClientToken"]
    assert second["S3Prefix"] == "daily" and second["ExportManifest"].startswith("daily/AWSDynamoDB/")

    with pytest.raises(ClientError, match="ValidationException.*DYNAMODB_JSON"):
        ddb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=BUCKET, ExportFormat="ION")
    with pytest.raises(ClientError, match="ExportNotFoundException"):
        ddb.describe_export(ExportArn=f"{table_arn}/export/01234567890123-0123abcd")
    failed = ddb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket="no-such-bucket-here")["ExportDescription"]
    failed = ddb.describe_export(ExportArn=failed["ExportArn"])["ExportDescription"]
    assert (failed["ExportStatus"], failed["FailureCode"]) == ("FAILED", "S3NoSuchBucket")


def test_a_number_key_written_two_ways_is_one_item_in_a_past_export(aws: tuple[Any, Any]) -> None:
    # Given an item with sk 1, then the same item written again with sk 1.0 (DynamoDB's number equality)
    ddb, s3 = aws
    arn = new_table(ddb)
    name = arn.rsplit("/", 1)[1]
    ddb.put_item(TableName=name, Item={"pk": {"S": "N"}, "sk": {"N": "1"}, "v": {"S": "old"}})
    time.sleep(0.01)
    at = datetime.now(timezone.utc)
    time.sleep(0.01)
    ddb.put_item(TableName=name, Item={"pk": {"S": "N"}, "sk": {"N": "1.0"}, "v": {"S": "new"}})
    assert len(ddb.scan(TableName=name)["Items"]) == 1
    # Then the export as of before the second write holds the one item as it was then
    _, lines = read_export(s3, export(ddb, arn, ExportTime=at))
    assert [line["Item"]["v"] for line in lines] == [{"S": "old"}]
