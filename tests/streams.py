"""A model DynamoDB table that emits stream records in the shape Lambda delivers them.

Writes go to an in-memory table; each one yields the record DynamoDB Streams would carry
(eventName, Keys, NewImage/OldImage, SequenceNumber, ApproximateCreationDateTime), serialised with
boto3's TypeSerializer and with binary as base64, as in Lambda's JSON event.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from ddbsync.streams.records import lambda_json

REGION, ACCOUNT = "us-east-1", "123456789012"
_serializer = TypeSerializer()


def typed(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item as DynamoDB JSON."""
    return {name: lambda_json(_serializer.serialize(value)) for name, value in item.items()}


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-11-23T00:00:00.000"


@dataclass
class ModelTable:
    """A DynamoDB table in memory, producing its stream as it is written."""

    name: str
    key_names: tuple[str, ...]
    view_type: str = "NEW_AND_OLD_IMAGES"
    items: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    sequence: int = 10**20
    clock: float = 1_795_000_000.0
    with_time: bool = True

    def _key(self, item: dict[str, Any]) -> tuple:
        return tuple(item[k] for k in self.key_names)

    def _record(self, event: str, key: tuple, old: dict | None, new: dict | None) -> dict[str, Any]:
        self.sequence += 100
        self.clock += 0.25
        keys = dict(zip(self.key_names, key))
        dynamodb: dict[str, Any] = {
            "Keys": typed(keys),
            "SequenceNumber": str(self.sequence),
            "SizeBytes": 100,
            "StreamViewType": self.view_type,
        }
        if self.with_time:
            dynamodb["ApproximateCreationDateTime"] = self.clock
        if new is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            dynamodb["NewImage"] = typed(new)
        if old is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            dynamodb["OldImage"] = typed(old)
        return {
            "eventID": f"ev{self.sequence}",
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": dynamodb,
            "eventSourceARN": stream_arn(self.name),
        }

    def put(self, item: dict[str, Any]) -> dict[str, Any]:
        key = self._key(item)
        old = self.items.get(key)
        self.items[key] = copy.deepcopy(item)
        return self._record("INSERT" if old is None else "MODIFY", key, old, item)

    def update(self, key: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """SET the given attributes (None removes one), like UpdateItem."""
        k = self._key(key)
        old = self.items.get(k)
        new = copy.deepcopy(old) if old is not None else dict(key)
        for name, value in changes.items():
            if value is None:
                new.pop(name, None)
            else:
                new[name] = value
        self.items[k] = new
        return self._record("INSERT" if old is None else "MODIFY", k, old, new)

    def delete(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """DeleteItem; deleting a missing item writes no stream record."""
        k = self._key(key)
        old = self.items.pop(k, None)
        return None if old is None else self._record("REMOVE", k, old, None)


def event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A Lambda event for a batch of records."""
    return {"Records": records}


_next_sequence = [5 * 10**20]


def raw_record(
    table: str,
    event_name: str,
    keys: dict[str, Any],
    new_image: dict[str, Any] | None = None,
    sequence: int | None = None,
    created: float | None = 1_795_000_000.0,
    view_type: str = "NEW_AND_OLD_IMAGES",
) -> dict[str, Any]:
    """A stream record from DynamoDB JSON written by hand, for values a serializer would tidy up."""
    if sequence is None:
        _next_sequence[0] += 1
        sequence = _next_sequence[0]
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(sequence), "StreamViewType": view_type}
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = created
    if new_image is not None:
        dynamodb["NewImage"] = new_image
    return {"eventName": event_name, "eventSourceARN": stream_arn(table), "dynamodb": dynamodb}
