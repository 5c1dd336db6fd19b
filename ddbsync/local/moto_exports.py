"""DynamoDB exports to S3 on the local stack's moto server, laid out as DynamoDB lays them out.

moto 5.2's ExportTableToPointInTime writes one gzip file and no manifests, ignores ExportTime, knows no
incremental exports, and its ListExports needs a TableArn. `install()` replaces the three export operations
of moto's DynamoDB handler in this process, so that a reader written for real exports reads these unchanged:

    <S3Prefix>/AWSDynamoDB/<ExportId>/_started                  empty, written first
                                     /data/<26 base32>.json.gz   one per key-hash partition, empty ones too
                                     /manifest-files.json        one line per data file
                                     /manifest-summary.json      what DescribeExport calls ExportManifest
                                     /manifest-*.md5, .checksum  base64 of the manifest's MD5

Past table states come from a change log kept beside moto's stream: every write the stream sees is recorded
with a microsecond time and both images. A full export as of T undoes the changes after T; an incremental
export folds the changes in [ExportFromTime, ExportToTime) into one line per item. Every DynamoDB request
runs alone, so an export sees each write whole, together with its log entry.

Left out: ION (refused), S3 encryption of the written objects, the 15-minute minimum of an incremental window
(kept: the 24-hour maximum), and number normalisation (moto keeps numbers as written).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    MockValidationException,
    PointInTimeRecoveryUnavailable,
    TableNotFoundException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

DATA_FILES = 4  # key-hash partitions per export: DynamoDB writes at least one data file per partition
# Real exports write `.md5` files (seen in listings of real exports: 24 bytes, base64 of the MD5); AWS's
# documentation names them `.checksum`. Both are written, with the same content, so either reader works.
CHECKSUM_SUFFIXES = (".md5", ".checksum")
MAX_INCREMENTAL_WINDOW_US = 24 * 3600 * 10**6
VIEW_TYPES = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")
LOG = "_ddbsync_change_log"  # attribute of a moto Table: its ChangeLog (deep-copied with the table)
EXPORTS = "_ddbsync_exports"  # attribute of a DynamoDB backend: its exports, so a moto reset clears them

Image = dict[str, Any]  # an item or key in DynamoDB JSON: numbers as strings, binary as base64
_ONE_REQUEST_AT_A_TIME = threading.RLock()


def now_us() -> int:
    """Microseconds since the epoch: the precision of an incremental export's WriteTime."""
    return time.time_ns() // 1000


def _us(moment: datetime | float) -> int:
    """Microseconds since the epoch of a parsed request timestamp (naive UTC, as moto parses) or of epoch seconds."""
    if isinstance(moment, datetime):
        moment = moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()
    return round(float(moment) * 1_000_000)


def _datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def _iso(us: int) -> str:
    """The manifests' time format: `2020-11-04T07:28:34.028Z`."""
    return _datetime(us).strftime("%Y-%m-%dT%H:%M:%S.") + f"{us // 1000 % 1000:03d}Z"


def _error(name: str, message: str) -> JsonRESTError:
    return JsonRESTError(ERROR_TYPE_PREFIX + name, message)


@dataclass
class Change:
    """One write the table's stream saw, with both images as they were at that moment."""

    time_us: int
    keys: Image
    old: Image | None
    new: Image | None


@dataclass
class ChangeLog:
    """Every write since the table's stream was enabled: how an export goes back in time."""

    start_us: int
    changes: list[Change] = field(default_factory=list)

    def record(self, keys: Image, old: Image | None, new: Image | None) -> None:
        """Append a write at a time strictly after the previous one, so times order the log."""
        last = self.changes[-1].time_us if self.changes else self.start_us
        self.changes.append(Change(max(now_us(), last + 1), keys, old, new))


def _image(item: Item) -> Image:
    """An item as DynamoDB JSON, detached from moto's object (which later updates change in place)."""
    return json.loads(dynamo_json_dump(item.to_json()["Attributes"]))


def _keys(table: Table, image: Image) -> Image:
    return {name: image[name] for name in table.table_key_attrs}


def _key_id(keys: Image) -> str:
    """One text per item, as moto tells keys apart: numbers by value (`1` and `1.0` are one key)."""
    canonical = {
        name: {"N": format(Decimal(value["N"]).normalize(), "f")} if isinstance(value, dict) and "N" in value else value
        for name, value in keys.items()
    }
    return json.dumps(canonical, sort_keys=True)


# --- what install() patches into moto ---------------------------------------------------------------------


def _start_log(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def init_and_start_log(shard: StreamShard, account_id: str, table: Table) -> None:
        init(shard, account_id, table)
        if not hasattr(table, LOG):  # moto keeps feeding the first shard when a stream is disabled
            setattr(table, LOG, ChangeLog(now_us()))

    return init_and_start_log


def _record(add: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(add)
    def record_and_add(shard: StreamShard, old: Item | None, new: Item | None) -> None:
        old_image, new_image = (None if i is None else _image(i) for i in (old, new))
        getattr(shard.table, LOG).record(_keys(shard.table, old_image or new_image), old_image, new_image)
        add(shard, old, new)

    return record_and_add


def _alone(call_action: Callable[[DynamoHandler], Any]) -> Callable[[DynamoHandler], Any]:
    @functools.wraps(call_action)
    def call_action_alone(handler: DynamoHandler) -> Any:
        with _ONE_REQUEST_AT_A_TIME:
            return call_action(handler)

    return call_action_alone


def _export_table_to_point_in_time(handler: DynamoHandler) -> ActionResult:
    return ActionResult({"ExportDescription": export_table(handler.dynamodb_backend, handler.body)})


def _describe_export(handler: DynamoHandler) -> ActionResult:
    export = getattr(handler.dynamodb_backend, EXPORTS, {}).get(handler.body["ExportArn"])
    if export is None:
        raise _error("ExportNotFoundException", f"Export not found: {handler.body['ExportArn']}")
    return ActionResult({"ExportDescription": export["description"]})


def _list_exports(handler: DynamoHandler) -> ActionResult:
    """Exports in reverse order of ExportArn, as AWS lists them; all of them unless MaxResults asks for pages."""
    table_arn = handler.body.get("TableArn")
    summaries = [
        {key: e["description"][key] for key in ("ExportArn", "ExportStatus", "ExportType")}
        for e in getattr(handler.dynamodb_backend, EXPORTS, {}).values()
        if table_arn in (None, e["description"]["TableArn"])
    ]
    summaries.sort(key=lambda s: s["ExportArn"], reverse=True)
    start = int(handler.body.get("NextToken") or 0)
    end = start + int(handler.body.get("MaxResults") or len(summaries))
    page: dict[str, Any] = {"ExportSummaries": summaries[start:end]}
    if end < len(summaries):
        page["NextToken"] = str(end)
    return ActionResult(page)


def install() -> None:
    """Patch moto's DynamoDB model and handler in this process; call before the server takes requests."""
    if getattr(DynamoHandler, EXPORTS, False):
        return
    StreamShard.__init__ = _start_log(StreamShard.__init__)  # type: ignore[method-assign]
    StreamShard.add = _record(StreamShard.add)  # type: ignore[method-assign]
    DynamoHandler.call_action = _alone(DynamoHandler.call_action)  # type: ignore[method-assign]
    DynamoHandler.export_table_to_point_in_time = _export_table_to_point_in_time  # type: ignore[method-assign]
    DynamoHandler.describe_export = _describe_export  # type: ignore[method-assign]
    DynamoHandler.list_exports = _list_exports  # type: ignore[method-assign]
    setattr(DynamoHandler, EXPORTS, True)


# --- the export itself --------------------------------------------------------------------------------------


@dataclass
class Content:
    """What an export holds, and the times it reports in DescribeExport and in its summary manifest."""

    lines: list[Image]
    description: dict[str, Any]  # ExportTime, or IncrementalExportSpecification
    version: str  # of manifest-summary.json's format
    summary: dict[str, Any]  # its time fields
    tail: dict[str, Any] = field(default_factory=dict)  # what an incremental summary adds after outputFormat


def export_table(backend: DynamoDBBackend, request: dict[str, Any]) -> dict[str, Any]:
    """Run an ExportTableToPointInTime request to the end; answer as AWS does, with the export IN_PROGRESS."""
    table = _exportable_table(backend, request)
    exports: dict[str, dict[str, Any]] = backend.__dict__.setdefault(EXPORTS, {})
    token = request.get("ClientToken") or str(uuid.uuid4())
    for earlier in exports.values():
        if earlier["started"]["ClientToken"] == token:
            if earlier["request"] != request:
                raise _error("ExportConflictException", f"Duplicate request detected for ClientToken {token}")
            return earlier["started"]

    start = now_us()
    log: ChangeLog | None = getattr(table, LOG, None)
    # A past state needs both PITR and the change log to reach back to it.
    pitr_start = _us(table.continuous_backups["PointInTimeRecoveryDescription"]["EarliestRestorableDateTime"])
    earliest = max(pitr_start, log.start_us if log else start)
    incremental = request.get("ExportType") == "INCREMENTAL_EXPORT"
    content = (_incremental if incremental else _full)(table, request, start, earliest, log)

    export_id = f"{start // 1000:014d}-{secrets.token_hex(4)}"
    prefix = request.get("S3Prefix")
    base = f"{prefix}/AWSDynamoDB/{export_id}" if prefix else f"AWSDynamoDB/{export_id}"
    description = {
        "ExportArn": f"{table.table_arn}/export/{export_id}",
        "ExportStatus": "IN_PROGRESS",
        "StartTime": _datetime(start),
        "TableArn": table.table_arn,
        "TableId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table.table_arn}@{table.created_at.isoformat()}")),
        "ClientToken": token,
        "S3Bucket": request["S3Bucket"],
        "S3BucketOwner": request.get("S3BucketOwner") or backend.account_id,
        "S3Prefix": prefix,
        "S3SseAlgorithm": request.get("S3SseAlgorithm", "AES256"),
        "S3SseKmsKeyId": request.get("S3SseKmsKeyId"),
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": "INCREMENTAL_EXPORT" if incremental else "FULL_EXPORT",
        **content.description,
    }
    started = {key: value for key, value in description.items() if value is not None}
    export = exports[started["ExportArn"]] = {"request": request, "started": started, "description": started}

    s3 = s3_backends[started["S3BucketOwner"]][get_partition(backend.region_name)]
    if request["S3Bucket"] not in s3.buckets:
        failure = {"FailureCode": "S3NoSuchBucket", "FailureMessage": "The specified bucket does not exist"}
        export["description"] = {**started, "ExportStatus": "FAILED", "EndTime": _datetime(now_us()), **failure}
        return started
    summary = {
        "version": content.version,
        "exportArn": started["ExportArn"],
        "startTime": _iso(start),
        "endTime": None,
        "tableArn": table.table_arn,
        "tableId": started["TableId"],
        **content.summary,
        "s3Bucket": request["S3Bucket"],
        "s3Prefix": prefix,
        "s3SseAlgorithm": description["S3SseAlgorithm"],
        "s3SseKmsKeyId": description["S3SseKmsKeyId"],
        "manifestFilesS3Key": f"{base}/manifest-files.json",
    }
    size = _write(s3, request["S3Bucket"], base, table, content, summary)
    export["description"] = {
        **started,
        "ExportStatus": "COMPLETED",
        "EndTime": _datetime(now_us()),
        "ExportManifest": f"{base}/manifest-summary.json",
        "ItemCount": len(content.lines),
        "BilledSizeBytes": size,
    }
    return started


def _exportable_table(backend: DynamoDBBackend, request: dict[str, Any]) -> Table:
    """The table to export, refused as DynamoDB refuses it (or as the local stack must: ION)."""
    table = next((t for t in backend.tables.values() if t.table_arn == request["TableArn"]), None)
    if table is None:
        raise TableNotFoundException(request["TableArn"])
    if table.continuous_backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] != "ENABLED":
        raise PointInTimeRecoveryUnavailable(table.name)
    if request.get("ExportFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
        raise MockValidationException(
            f"ExportFormat {request['ExportFormat']!r}: the local stack writes DYNAMODB_JSON exports only"
        )
    if request.get("ExportType", "FULL_EXPORT") not in ("FULL_EXPORT", "INCREMENTAL_EXPORT"):
        raise MockValidationException("ExportType must be FULL_EXPORT or INCREMENTAL_EXPORT")
    return table


def _full(table: Table, request: dict[str, Any], start: int, earliest: int, log: ChangeLog | None) -> Content:
    """The whole table as of ExportTime (default: now)."""
    at = _us(request["ExportTime"]) if "ExportTime" in request else start
    _check_window(at, at, earliest, start, log)
    return Content(
        lines=[{"Item": image} for image in _table_as_of(table, log, at)],
        description={"ExportTime": _datetime(at)},
        version="2020-06-30",
        summary={"exportTime": _iso(at)},
    )


def _incremental(table: Table, request: dict[str, Any], start: int, earliest: int, log: ChangeLog | None) -> Content:
    """The items changed in [ExportFromTime, ExportToTime), ExportToTime defaulting to now."""
    window = request.get("IncrementalExportSpecification") or {}
    if "ExportFromTime" not in window:
        raise MockValidationException("IncrementalExportSpecification.ExportFromTime is required")
    begin, end = _us(window["ExportFromTime"]), _us(window["ExportToTime"]) if "ExportToTime" in window else start
    view = window.get("ExportViewType", "NEW_AND_OLD_IMAGES")
    if view not in VIEW_TYPES:
        raise MockValidationException(f"ExportViewType must be one of {VIEW_TYPES}")
    _check_window(begin, end, earliest, start, log)
    if not 0 < end - begin <= MAX_INCREMENTAL_WINDOW_US:
        raise _error(
            "InvalidExportTimeException",
            "Difference between export period start and end must be above 0 and at most 24 hours "
            "(AWS also asks for at least 15 minutes; the local stack does not)",
        )
    spec = {"ExportFromTime": _datetime(begin), "ExportToTime": _datetime(end), "ExportViewType": view}
    return Content(
        lines=_incremental_lines(log, begin, end, view) if log else [],
        description={"IncrementalExportSpecification": spec},
        version="2023-08-01",
        summary={"exportFromTime": _iso(begin), "exportToTime": _iso(end)},
        tail={"outputView": view, "exportType": "INCREMENTAL_EXPORT"},
    )


def _check_window(begin: int, end: int, earliest: int, now: int, log: ChangeLog | None) -> None:
    """Refuse times outside the PITR window (or before the change log began), as DynamoDB refuses them."""
    if begin < earliest or end > now:
        reason = "" if log else " (the local stack rebuilds past states from the table's stream, and it has none)"
        raise _error(
            "InvalidExportTimeException",
            f"Export time outside the point in time recovery window [{_iso(earliest)}, {_iso(now)}]{reason}",
        )


def _table_as_of(table: Table, log: ChangeLog | None, at: int) -> list[Image]:
    """The table's items at `at`: today's items, with every logged change after `at` undone."""
    state = {_key_id(_keys(table, image)): image for image in map(_image, table.all_items())}
    for change in reversed(log.changes if log else []):
        if change.time_us <= at:
            break
        if change.old is None:
            state.pop(_key_id(change.keys), None)
        else:
            state[_key_id(change.keys)] = change.old
    return list(state.values())


def _incremental_lines(log: ChangeLog, begin: int, end: int, view: str) -> list[Image]:
    """One line per item changed in [begin, end): its image before the window, its last write in it.

    An item created in the window has no OldImage, a deleted one no NewImage; NEW_IMAGE drops OldImage.
    """
    before: dict[str, Image | None] = {}
    last: dict[str, Change] = {}
    for change in log.changes:
        if begin <= change.time_us < end:
            before.setdefault(_key_id(change.keys), change.old)
            last[_key_id(change.keys)] = change
    lines = []
    for key, change in last.items():
        line: Image = {"Metadata": {"WriteTime": change.time_us}, "Keys": change.keys}
        if change.new is not None:
            line["NewImage"] = change.new
        if view == "NEW_AND_OLD_IMAGES" and before[key] is not None:
            line["OldImage"] = before[key]
        lines.append(line)
    return lines


def _partition(table: Table, line: Image) -> int:
    """The data file of a line: a hash of its partition key, as DynamoDB splits files by partition."""
    image = line.get("Item") or line["Keys"]
    digest = hashlib.md5(json.dumps(image[table.hash_key_attr], sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") % DATA_FILES


def _write(s3: Any, bucket: str, base: str, table: Table, content: Content, summary: dict[str, Any]) -> int:
    """Write `_started`, the data files, then both manifests with their checksums; return the data's size."""
    s3.put_object(bucket, f"{base}/_started", b"")
    files: list[list[Image]] = [[] for _ in range(DATA_FILES)]
    for line in content.lines:
        files[_partition(table, line)].append(line)
    manifest_lines, size = [], 0
    for file_lines in files:
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in file_lines).encode()
        size += len(data)
        body = gzip.compress(data, mtime=0)
        md5 = hashlib.md5(body).digest()
        etag = hashlib.md5(md5).hexdigest() + "-1"  # the ETag S3 gives a one-part multipart upload
        key = f"{base}/data/{base64.b32encode(secrets.token_bytes(16)).decode().rstrip('=').lower()}.json.gz"
        s3.put_object(bucket, key, body, etag=etag)
        entry = {"itemCount": len(file_lines), "md5Checksum": base64.b64encode(md5).decode(), "etag": etag}
        manifest_lines.append(json.dumps({**entry, "dataFileS3Key": key}, separators=(",", ":")) + "\n")
    _put_with_checksums(s3, bucket, f"{base}/manifest-files", "".join(manifest_lines).encode())
    summary.update(endTime=_iso(now_us()), billedSizeBytes=size, itemCount=len(content.lines))
    summary.update(outputFormat="DYNAMODB_JSON", **content.tail)
    _put_with_checksums(s3, bucket, f"{base}/manifest-summary", json.dumps(summary).encode())
    return size


def _put_with_checksums(s3: Any, bucket: str, stem: str, body: bytes) -> None:
    s3.put_object(bucket, f"{stem}.json", body)
    checksum = base64.b64encode(hashlib.md5(body).digest())
    for suffix in CHECKSUM_SUFFIXES:
        s3.put_object(bucket, stem + suffix, checksum)
