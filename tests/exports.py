"""Exports written the way DynamoDB writes them (S3DataExport.Output), for tests and benchmarks.

Independent of the local stack's export, so the loader is checked against the documented layout
itself, including files damaged on purpose.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any, Iterable

REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET = "exports"  # the bucket of the `s3` fixture (tests/conftest.py)


def gzip_lines(lines: Iterable[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode(), compresslevel=1)


def write_export(
    s3: Any,
    bucket: str,
    table: str,
    files: list[list[dict[str, Any]]],
    export_time: datetime,
    prefix: str = "exports",
    incremental_from: datetime | None = None,
    bodies: dict[int, bytes] | None = None,
) -> str:
    """Write one export of `table` whose data files hold `files` (lines as DynamoDB writes them).

    `bodies` replaces the stored object of some files (damaged on purpose) while the manifest keeps
    describing the original. Returns the export's folder key (`<prefix>/AWSDynamoDB/<id>/`).
    """
    export_id = f"{int(export_time.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    folder = f"{prefix}/AWSDynamoDB/{export_id}/"
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    s3.put_object(Bucket=bucket, Key=folder + "_started", Body=b"")
    entries = []
    for number, lines in enumerate(files):
        body = gzip_lines(lines)
        key = f"{folder}data/{uuid.uuid4().hex}.json.gz"
        digest = hashlib.md5(body).digest()
        s3.put_object(Bucket=bucket, Key=key, Body=(bodies or {}).get(number, body))
        entries.append(
            {
                "itemCount": len(lines),
                "md5Checksum": base64.b64encode(digest).decode(),
                "etag": digest.hex(),
                "dataFileS3Key": key,
            }
        )
    manifest_files = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
    summary: dict[str, Any] = {
        "version": "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": export_time.isoformat(),
        "endTime": export_time.isoformat(),
        "tableArn": table_arn,
        "tableId": str(uuid.uuid4()),
        "exportTime": export_time.isoformat(),
        "s3Bucket": bucket,
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": folder + "manifest-files.json",
        "billedSizeBytes": 0,
        "itemCount": sum(len(lines) for lines in files),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "INCREMENTAL_EXPORT" if incremental_from else "FULL_EXPORT",
    }
    if incremental_from is not None:
        summary["exportFromTime"] = incremental_from.isoformat()
        summary["exportToTime"] = export_time.isoformat()
    for name, body in (("manifest-files", manifest_files), ("manifest-summary", json.dumps(summary).encode())):
        s3.put_object(Bucket=bucket, Key=f"{folder}{name}.json", Body=body)
        s3.put_object(Bucket=bucket, Key=f"{folder}{name}.md5", Body=base64.b64encode(hashlib.md5(body).digest()))
    return folder
