"""An export's manifests, as DynamoDB writes them next to the data (S3DataExport.Output in AWS's guide).

`<prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json` says what the export is (table, time, type,
format, item count) and where `manifest-files.json` is: one JSON line per data file with its S3 key,
item count and MD5. Pure parsing, so the CLI, the backfill function and the tests read one model.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

FULL_EXPORT = "FULL_EXPORT"
INCREMENTAL_EXPORT = "INCREMENTAL_EXPORT"
SUMMARY = "manifest-summary.json"


class ExportError(Exception):
    """An export that cannot be loaded as it is; the message says which and what to do."""


class FileRefused(ExportError):
    """A data file that failed its checks: nothing of it is loaded."""


@dataclass(frozen=True)
class DataFile:
    """One data file of an export, as `manifest-files.json` lists it."""

    key: str
    item_count: int
    md5: bytes  # the object's MD5 digest, raw

    def entry(self) -> dict[str, Any]:
        """The manifest line this came from (as the backfill queue's messages carry it)."""
        return {
            "dataFileS3Key": self.key,
            "itemCount": self.item_count,
            "md5Checksum": base64.b64encode(self.md5).decode(),
        }


@dataclass(frozen=True)
class ExportSummary:
    """What `manifest-summary.json` says about one export."""

    export_arn: str
    table_name: str
    export_time: datetime
    export_type: str
    output_format: str
    item_count: int
    bucket: str
    manifest_files_key: str
    from_time: datetime | None = None  # an incremental export's window
    to_time: datetime | None = None

    @property
    def folder(self) -> str:
        """`<prefix>/AWSDynamoDB/<ExportId>/`, where the manifests are."""
        return self.manifest_files_key.rsplit("/", 1)[0] + "/"

    @property
    def incremental(self) -> bool:
        return self.export_type == INCREMENTAL_EXPORT

    def document(self) -> dict[str, Any]:
        """The fields the backfill needs, as JSON (a queue message carries them to the backfill function)."""
        return {
            "exportArn": self.export_arn,
            "tableArn": f"arn:aws:dynamodb:::table/{self.table_name}",
            "exportTime": self.export_time.isoformat(),
            "exportType": self.export_type,
            "outputFormat": self.output_format,
            "itemCount": self.item_count,
            "s3Bucket": self.bucket,
            "manifestFilesS3Key": self.manifest_files_key,
            **({"exportFromTime": self.from_time.isoformat()} if self.from_time else {}),
            **({"exportToTime": self.to_time.isoformat()} if self.to_time else {}),
        }


def parse_time(value: Any, field: str, where: str) -> datetime:
    """An ISO 8601 time (AWS writes `2020-11-04T07:28:34.028Z`) or epoch seconds, as an aware datetime."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, timezone.utc)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        raise ExportError(f"{where}: {field} {value!r} is not a time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_summary(text: str | bytes, where: str) -> ExportSummary:
    """`manifest-summary.json`; `where` names the object in messages."""
    try:
        summary = json.loads(text)
        table_arn = summary["tableArn"]
        export_type = summary.get("exportType", FULL_EXPORT)
        times = {}
        if export_type == INCREMENTAL_EXPORT:
            for field in ("exportFromTime", "exportToTime"):
                times[field] = parse_time(summary[field], field, where) if summary.get(field) else None
        return ExportSummary(
            export_arn=summary["exportArn"],
            table_name=table_arn.split(":table/", 1)[1].split("/", 1)[0],
            export_time=parse_time(summary.get("exportTime") or summary.get("exportToTime"), "exportTime", where),
            export_type=export_type,
            output_format=summary.get("outputFormat", "DYNAMODB_JSON"),
            item_count=int(summary.get("itemCount") or 0),
            bucket=summary["s3Bucket"],
            manifest_files_key=summary["manifestFilesS3Key"],
            from_time=times.get("exportFromTime"),
            to_time=times.get("exportToTime"),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise ExportError(f"{where} is not an export's summary manifest ({error!r})") from None


def decode_md5(text: str, where: str) -> bytes:
    """An MD5 as DynamoDB's manifests give it: base64 of the digest (hex accepted too)."""
    try:
        if len(text) == 32:
            return bytes.fromhex(text)
        digest = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error, TypeError):
        digest = b""
    if len(digest) != 16:
        raise ExportError(f"{where}: md5Checksum {text!r} is not an MD5")
    return digest


def parse_files(text: str | bytes, where: str) -> list[DataFile]:
    """`manifest-files.json`: one JSON object per line."""
    files = []
    lines = text.decode() if isinstance(text, bytes) else text
    for number, line in enumerate(lines.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            files.append(
                DataFile(
                    entry["dataFileS3Key"],
                    int(entry["itemCount"]),
                    decode_md5(entry["md5Checksum"], f"{where} line {number}"),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ExportError(f"{where} line {number} is not a data file entry ({error!r})") from None
    return files
