"""Which change wins: every write carries one exact, totally ordered version number.

One encoding for every flow: the time of the change in microseconds since the epoch, then the
source's own tie-breaker below it, packed into one integer that PostgreSQL compares as a plain
`numeric`. The tie-breaker is wide enough for a Kinesis sequence number (DynamoDB Streams' have at
most 40 digits):
- a stream record: (ApproximateCreationDateTime, whole seconds on DynamoDB Streams, SequenceNumber);
  a record without a creation time (AWS's sample events have none) counts as time 0, so its sequence
  number alone orders it;
- a row of a full export: just below the export's second (`snapshot_version`);
- a line of an incremental export: its `Metadata.WriteTime`, in microseconds (`write_time_version`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

TIE_SPAN = 10**129  # room for the tie-breaker: a Kinesis sequence number has up to 129 digits
MICROSECONDS = 10**6
SECOND = MICROSECONDS * TIE_SPAN  # one second on the version scale
VERSION_FIELD = "ddbsyncVersion"  # a record ddbsync built itself (an export line) carries its version here
UNREADABLE_FIELD = "ddbsyncUnreadable"  # ... or why it holds no change at all (the decode rejects it)


class VersionError(ValueError):
    """The record carries no usable sequence number or creation time."""


def epoch_second(value: Any) -> int:
    """Seconds since the epoch from Lambda's number or boto3's datetime."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    raise VersionError(f"ApproximateCreationDateTime {value!r} is not a time")


def stream_version(dynamodb: dict[str, Any]) -> int:
    """Version of one stream record's change, from its `dynamodb` section."""
    sequence = dynamodb.get("SequenceNumber")
    if type(sequence) is not str or len(sequence) > 40 or not sequence.isdigit():
        raise VersionError(f"SequenceNumber {sequence!r} is not a number of up to 40 digits")
    created = dynamodb.get("ApproximateCreationDateTime")
    second = int(created) if type(created) in (float, int) else epoch_second(created)  # Lambda's usual number
    return second * SECOND + int(sequence)


def record_version(record: dict[str, Any]) -> int:
    """Version of a record: the one ddbsync gave a record it built, else the stream record's own."""
    given = record.get(VERSION_FIELD)
    if given is None:
        return stream_version(record["dynamodb"])
    if type(given) is not int:
        raise VersionError(given if isinstance(given, str) else f"{VERSION_FIELD} {given!r} is not a whole number")
    return given


def stored_version(expression: str) -> str:
    """SQL for a stored version on today's scale, whatever scale it was written on.

    Versions written before the microsecond scale (second x 10^40 + sequence number, all below
    10^100; every version since is above 10^135) are read as the same change on the new scale, so
    the replicator compares correctly before, during and after the migration that rewrites them.
    """
    e = expression
    return f"(CASE WHEN {e} < 1e100 THEN div({e}, 1e40) * 1e135 + mod({e}, 1e40) ELSE {e} END)"


def snapshot_version(export_time: datetime | float) -> int:
    """Version of rows from an export as of `export_time`: just below that second.

    A stream record from the export's second or later wins over the snapshot (re-applying one the
    snapshot already holds is harmless); an older one loses.
    """
    return epoch_second(export_time) * SECOND - 1


def write_time_version(write_time_us: int) -> int:
    """Version of an incremental export's line, from its `Metadata.WriteTime` (microseconds)."""
    if type(write_time_us) is not int or write_time_us < 0:
        raise VersionError(f"WriteTime {write_time_us!r} is not a time in microseconds")
    return write_time_us * TIE_SPAN
