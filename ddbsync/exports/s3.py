"""Finding, starting and reading DynamoDB exports in S3 with boto3 (endpoints from boto3's usual configuration).

AWS's errors become `ExportError`s that say what is wrong and what to do, one line each.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime
from typing import Any, Callable, Iterator

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ddbsync.exports.manifest import (
    SUMMARY,
    DataFile,
    ExportError,
    ExportSummary,
    FileRefused,
    parse_files,
    parse_summary,
)
from ddbsync.exports.reading import verified_lines

WAIT_POLL_SECONDS = 5.0  # the first pause while an export runs ...
LONGEST_POLL_SECONDS = 60.0  # ... doubling up to this


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX/AWSDynamoDB/EXPORT_ID/` (or its manifest-summary.json) -> (bucket, folder with `/`)."""
    if not url.startswith("s3://") or "/" not in url[5:] or url[5:].startswith("/"):
        raise ExportError(f"{url!r} is not an export folder: give s3://BUCKET/PREFIX/AWSDynamoDB/EXPORT_ID/")
    bucket, _, folder = url[5:].partition("/")
    if folder.endswith(SUMMARY):
        folder = folder[: -len(SUMMARY)]
    folder = folder if folder.endswith("/") else folder + "/"
    if "/AWSDynamoDB/" not in "/" + folder:
        raise ExportError(f"{url!r} is not an export folder: it has no AWSDynamoDB/EXPORT_ID/ part")
    return bucket, folder


def _explained(error: ClientError | BotoCoreError, what: str) -> ExportError:
    """One line for an AWS error, naming what was asked."""
    if isinstance(error, BotoCoreError):
        return ExportError(f"{what}: {error} (check AWS credentials, region and AWS_ENDPOINT_URL)")
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    hints = {
        "NoSuchBucket": "no such bucket",
        "NoSuchKey": "no such object: is this an export folder, and is the export finished?",
        "404": "no such object: is this an export folder, and is the export finished?",
        "AccessDenied": "access denied: the caller needs s3:GetObject on the export (and kms:Decrypt on its key)",
        "403": "access denied: the caller needs s3:GetObject on the export (and kms:Decrypt on its key)",
        "AccessDeniedException": "access denied: check the caller's IAM permissions",
        "ExportNotFoundException": "no such export",
        "TableNotFoundException": "no such DynamoDB table",
        "ResourceNotFoundException": "no such DynamoDB table",
        "PointInTimeRecoveryUnavailableException": "point-in-time recovery is off on the table: turn it on first",
    }
    return ExportError(f"{what}: {hints.get(code, f'{code}: {message}'.strip(': '))}")


class S3Exports:
    """Exports in S3 and the DynamoDB calls that make and describe them."""

    def __init__(self, s3: Any = None, dynamodb: Any = None) -> None:
        self.s3 = s3 or boto3.client("s3")
        self._dynamodb = dynamodb

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = boto3.client("dynamodb")
        return self._dynamodb

    def _read(self, bucket: str, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise _explained(error, f"s3://{bucket}/{key}") from None

    def _checked(self, bucket: str, key: str) -> bytes:
        """A manifest, checked against its checksum object when there is one.

        Real exports write `<manifest>.md5` (base64 of the MD5); AWS's guide names `<manifest>.checksum`.
        """
        body = self._read(bucket, key)
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        stem = key.rsplit(".", 1)[0]
        for checksum_key in (stem + ".md5", stem + ".checksum"):
            try:
                expected = self.s3.get_object(Bucket=bucket, Key=checksum_key)["Body"].read().decode().strip()
            except ClientError:
                continue
            if expected not in (digest.hex(), base64.b64encode(digest).decode()):
                raise FileRefused(f"s3://{bucket}/{key}: its MD5 is not the one in {checksum_key}")
        return body

    def check_bucket(self, bucket: str) -> None:
        """Fail at once on a bucket that does not exist (DynamoDB would fail the export only later)."""
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                raise ExportError(f"s3://{bucket}: no such bucket") from None
        except BotoCoreError as error:
            raise _explained(error, f"s3://{bucket}") from None

    def summary(self, bucket: str, folder: str) -> ExportSummary:
        key = folder + SUMMARY
        summary = parse_summary(self._checked(bucket, key), f"s3://{bucket}/{key}")
        if (summary.bucket, summary.folder) != (bucket, folder):  # its manifests name keys where it was written
            raise ExportError(
                f"s3://{bucket}/{folder} holds an export written to s3://{summary.bucket}/{summary.folder}; "
                "load it from there"
            )
        return summary

    def data_files(self, summary: ExportSummary) -> list[DataFile]:
        key = summary.manifest_files_key
        return parse_files(self._checked(summary.bucket, key), f"s3://{summary.bucket}/{key}")

    def lines(self, summary: ExportSummary, data_file: DataFile) -> Iterator[dict[str, Any]]:
        """A data file's lines, streamed and verified (`FileRefused` names the object)."""
        where = f"s3://{summary.bucket}/{data_file.key}"
        try:
            body = self.s3.get_object(Bucket=summary.bucket, Key=data_file.key)["Body"]
        except (ClientError, BotoCoreError) as error:
            raise _explained(error, where) from None
        try:
            yield from verified_lines(body, data_file, where)
        except (BotoCoreError, OSError) as error:  # a read that timed out or broke off: try again later
            raise ExportError(f"{where}: reading it from S3 failed ({error}); run again (loaded files are skipped)")
        finally:
            body.close()

    def opener(self, summary: ExportSummary, data_file: DataFile) -> Callable[[], Iterator[dict[str, Any]]]:
        return lambda: self.lines(summary, data_file)

    def folder_of(self, export_arn: str) -> tuple[str, str]:
        """The bucket and folder of a finished export, from `DescribeExport`."""
        try:
            description = self.dynamodb.describe_export(ExportArn=export_arn)["ExportDescription"]
        except (ClientError, BotoCoreError) as error:
            raise _explained(error, f"export {export_arn}") from None
        status = description.get("ExportStatus")
        if status == "IN_PROGRESS":
            raise ExportError(f"export {export_arn} is still IN_PROGRESS: wait for it (or use --start, which waits)")
        if status == "FAILED":
            code, message = description.get("FailureCode"), description.get("FailureMessage")
            reason = ": ".join(part for part in (code, message) if part) or "no reason given"
            raise ExportError(f"export {export_arn} FAILED: {reason}")
        manifest = description.get("ExportManifest") or ""
        folder = manifest.rsplit("/", 1)[0] + "/" if "/" in manifest else ""
        if not folder:
            raise ExportError(f"export {export_arn} names no manifest; is it finished?")
        return description["S3Bucket"], folder

    def start(
        self,
        table: str,
        bucket: str,
        prefix: str | None,
        export_time: datetime | None = None,
        window: tuple[datetime, datetime] | None = None,
        kms_key: str | None = None,
    ) -> str:
        """Request an export of `table` (DynamoDB JSON) into `bucket`/`prefix`; its ARN.

        A full export as of `export_time` (default: now), or with `window` (from, to) an incremental one
        with new and old images. With `kms_key` the objects are encrypted with that key (SSE-KMS).
        """
        try:
            arn = self.dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
            request: dict[str, Any] = {"TableArn": arn, "S3Bucket": bucket, "ExportFormat": "DYNAMODB_JSON"}
            if prefix:
                request["S3Prefix"] = prefix.strip("/")
            if export_time is not None:
                request["ExportTime"] = export_time
            if window is not None:
                request["ExportType"] = "INCREMENTAL_EXPORT"
                request["IncrementalExportSpecification"] = {
                    "ExportFromTime": window[0],
                    "ExportToTime": window[1],
                    "ExportViewType": "NEW_AND_OLD_IMAGES",
                }
            if kms_key:
                request.update(S3SseAlgorithm="KMS", S3SseKmsKeyId=kms_key)
            return self.dynamodb.export_table_to_point_in_time(**request)["ExportDescription"]["ExportArn"]
        except (ClientError, BotoCoreError) as error:
            raise _explained(error, f"export of {table} into s3://{bucket}") from None

    def wait(
        self,
        export_arn: str,
        timeout: float = 6 * 3600,
        poll: float = WAIT_POLL_SECONDS,
        on_poll: Callable[[float], None] | None = None,
    ) -> tuple[str, str]:
        """Wait for an export to finish (they take minutes to hours); its bucket and folder.

        Polls `DescribeExport` from `poll` seconds apart, backing off to a minute; `on_poll` gets the
        seconds waited so far after each poll that found it still running.
        """
        started = time.monotonic()
        pause = poll
        while True:
            try:
                return self.folder_of(export_arn)
            except ExportError as error:
                if "IN_PROGRESS" not in str(error) or time.monotonic() - started > timeout:
                    raise
            if on_poll is not None:
                on_poll(time.monotonic() - started)
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_POLL_SECONDS)
