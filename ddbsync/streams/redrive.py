"""Re-drive: apply again what the event source mapping set aside, read back from the stream.

An on-failure record says where the records were (shard, first and last sequence number), not what
they were. While the stream still holds that range (24 hours), it is read again from its first
record (`AT_SEQUENCE_NUMBER`) and applied through the replication core, version-guarded like any
delivery, so re-driving a range twice, or one a later change already overwrote, is harmless. The
queue message goes only once its range is committed. A range the stream no longer holds stays in
the queue and is reported with what mends it: a reload of the table from an export.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from botocore.exceptions import ClientError, ParamValidationError

from ddbsync.core.batch import BatchResult
from ddbsync.core.decode import table_name_from_arn
from ddbsync.streams.records import lambda_record

logger = logging.getLogger(__name__)

# What DynamoDB Streams answers for a range it no longer holds (trimmed after 24 h, or the stream gone).
GONE_ERRORS = ("TrimmedDataAccessException", "ResourceNotFoundException")
EMPTY_PAGES_BEFORE_GIVING_UP = 50  # empty pages may come before a range's records; then stop and retry later
VISIBILITY_SECONDS = 900  # a message being re-driven stays hidden this long; it goes once applied

Apply = Callable[[Sequence[dict[str, Any]]], BatchResult]


@dataclass
class RedriveReport:
    """What one re-drive did, for the command's output and the function's log."""

    ranges: int = 0  # on-failure messages whose records were applied and deleted
    records: int = 0
    rejected: int = 0
    gone: list[str] = field(default_factory=list)  # ranges the stream no longer holds, with the fix
    unreadable: int = 0  # messages that are not a DynamoDB stream on-failure record
    incomplete: list[str] = field(default_factory=list)  # ranges not read to their end: kept, tried again
    waiting: str | None = None  # the database was away: re-drive stopped, messages kept

    @property
    def complete(self) -> bool:
        return not (self.gone or self.unreadable or self.waiting or self.incomplete)


def read_range(streams: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one `DDBStreamBatchInfo` range, in Lambda's shape, first to last.

    GetRecords may answer empty pages before the records it holds, so reading goes on until the
    range's last record is seen; a range that cannot be read to its end raises `IncompleteRange`.
    """
    arn, last = info["streamArn"], int(info["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=arn,
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES_BEFORE_GIVING_UP:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence <= last:
                records.append(lambda_record(record, arn))
            if sequence >= last:
                return records
        empty = 0 if page["Records"] else empty + 1
        iterator = page.get("NextShardIterator")
    raise IncompleteRange(
        f"records {info['startSequenceNumber']}..{info['endSequenceNumber']} of shard {info['shardId']} "
        f"could not be read to the end ({len(records)} read); the message stays for the next re-drive"
    )


class IncompleteRange(RuntimeError):
    """The stream did not give the range's last record; nothing of it is applied."""


def _pages(sqs: Any, queue_url: str) -> Iterator[list[dict[str, Any]]]:
    """Every message visible now, a page at a time, each once: received ones stay hidden while the run lasts."""
    while True:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=VISIBILITY_SECONDS
        ).get("Messages", [])
        if not received:
            return
        yield received


def _chunks(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def redrive(sqs: Any, streams: Any, queue_url: str, apply: Apply, batch_size: int = 100) -> RedriveReport:
    """Re-read and apply every range in the on-failure queue; delete each message once applied."""
    report = RedriveReport()
    for page in _pages(sqs, queue_url):
        for position, message in enumerate(page):
            if not _redrive_message(sqs, streams, queue_url, message, apply, batch_size, report):
                # The database is away: what this run holds goes back to the queue for the next run.
                for kept in page[position:]:
                    sqs.change_message_visibility(
                        QueueUrl=queue_url, ReceiptHandle=kept["ReceiptHandle"], VisibilityTimeout=0
                    )
                return report
    return report


def _redrive_message(
    sqs: Any,
    streams: Any,
    queue_url: str,
    message: dict[str, Any],
    apply: Apply,
    batch_size: int,
    report: RedriveReport,
) -> bool:
    """Re-drive one on-failure message; False when the database was away and re-drive must stop."""
    try:
        info = json.loads(message["Body"])["DDBStreamBatchInfo"]
        records = read_range(streams, info)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, ParamValidationError):
        report.unreadable += 1
        logger.warning("on-failure message %s is not a stream batch record; left in the queue", message["MessageId"])
        return True
    except IncompleteRange as error:
        report.incomplete.append(str(error))
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] not in GONE_ERRORS:
            raise
        table = table_name_from_arn(info["streamArn"])
        report.gone.append(
            f"{table}: records {info['startSequenceNumber']}..{info['endSequenceNumber']} of shard "
            f"{info['shardId']} are no longer in the stream ({error.response['Error']['Code']}); "
            f"reload the table from an export: ddbsync backfill --table {table} --start"
        )
        return True
    for chunk in _chunks(records, batch_size):
        result = apply(chunk)
        if result.retry_from is not None:
            report.waiting = result.error or "the database is not reachable"
            return False
        report.records += len(chunk)
        report.rejected += result.rejected
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    report.ranges += 1
    return True
