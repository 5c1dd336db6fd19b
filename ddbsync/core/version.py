"""Which change wins: every write carries one exact, totally ordered version number.

A stream record's version is (ApproximateCreationDateTime in whole seconds, SequenceNumber), packed
into one integer so PostgreSQL compares it as a plain `numeric`. Sequence numbers have at most 40
digits, so the second sits above them. A record without a creation time (AWS's sample events have
none) counts as second 0: its sequence number alone orders it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SEQUENCE_SPAN = 10**40


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
    return second * SEQUENCE_SPAN + int(sequence)


def snapshot_version(export_time: datetime | float) -> int:
    """Version of rows from an export as of `export_time`: just below that second.

    A stream record from the export's second or later wins over the snapshot (re-applying one the
    snapshot already holds is harmless); an older one loses.
    """
    return epoch_second(export_time) * SEQUENCE_SPAN - 1
