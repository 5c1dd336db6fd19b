"""Stream record -> a change to one SQL row, or a reject with its reason.

Pure functions from a record (Lambda's JSON shape: typed values, numbers as text, binary as base64)
to the row the mapping describes. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ddbsync.core.version import VersionError, stream_version
from schema.model import Mappings, TableMapping
from schema.types import ConversionError, storable, to_json, to_plain, typed_value

UNUSABLE_VIEW_TYPES = ("KEYS_ONLY", "OLD_IMAGE")


class ConfigurationError(RuntimeError):
    """The stream or the deployment cannot work as configured; no record can be applied."""


@dataclass(slots=True)
class Change:
    """The latest state of one item as a SQL row, or its deletion, with the version that orders it."""

    table: TableMapping
    item_key: str
    version: int
    deleted: bool
    values: tuple[Any, ...]  # one SQL parameter per mapped attribute, in mapping order
    extras: str | None  # JSON object of unmapped attributes
    position: int  # index of the record in its batch


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that cannot be applied as it is, kept whole with the reason."""

    position: int
    reason: str
    table_name: str | None


@lru_cache(maxsize=256)
def table_name_from_arn(arn: str) -> str:
    """`arn:aws:dynamodb:region:account:table/Employees/stream/...` -> `Employees`."""
    _, _, resource = arn.partition(":table/")
    name = resource.split("/", 1)[0]
    if not name:
        raise ValueError(f"eventSourceARN {arn!r} names no DynamoDB table")
    return name


def sequence_number(record: dict[str, Any]) -> str | None:
    """The record's SequenceNumber, if it has one: what Lambda takes as its identifier."""
    dynamodb = record.get("dynamodb")
    return dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None


def check_view_type(view_type: str | None, where: str) -> None:
    """Replication needs the new image; fail loudly if the stream only carries keys or old images."""
    if view_type in UNUSABLE_VIEW_TYPES:
        raise ConfigurationError(
            f"{where}: stream view type {view_type} carries no new image; "
            "set StreamViewType to NEW_AND_OLD_IMAGES (or NEW_IMAGE)"
        )


def item_key(table: TableMapping, values: tuple[Any, ...]) -> str:
    """An item's identity: the SHA-256 of its canonical key text, equal for equal keys however spelt (`1E+2`, `100`).

    A digest, so that a tombstone's key stays 64 characters whatever the key's size (DynamoDB allows
    2,048 + 1,024 bytes; a PostgreSQL index entry holds about 2,700).
    """
    positions = table.key_positions
    if len(positions) == 1:
        text = _key_text(values[positions[0]])
    else:
        text = json.dumps([_key_text(values[i]) for i in positions])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int):
        return str(value)
    return value


def decode_record(record: dict[str, Any], position: int, mappings: Mappings) -> Change | Reject:
    """Decode one stream record through its table's mapping."""
    table_name: str | None = None
    try:
        table_name = table_name_from_arn(record.get("eventSourceARN", ""))
        table = mappings.for_dynamodb_table(table_name)
        if table is None:
            return Reject(position, f"no mapping for DynamoDB table {table_name!r}", table_name)
        dynamodb = record["dynamodb"]
        check_view_type(dynamodb.get("StreamViewType"), f"table {table_name}")
        version = stream_version(dynamodb)
        event = record.get("eventName")
        if event == "REMOVE":
            image, deleted = dynamodb["Keys"], True
        elif event in ("INSERT", "MODIFY"):
            image = dynamodb.get("NewImage")
            if image is None:
                raise ConfigurationError(
                    f"table {table_name}: {event} record without NewImage; the stream must carry new images"
                )
            deleted = False
        else:
            return Reject(position, f"unknown eventName {event!r}", table_name)
        values, extras = decode_image(table, image, keys_only=deleted)
        return Change(table, item_key(table, values), version, deleted, values, extras, position)
    except (ConversionError, VersionError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = str(error) if not isinstance(error, KeyError) else f"record has no {error}"
        return Reject(position, reason, table_name)


def decode_image(
    table: TableMapping, image: dict[str, Any], keys_only: bool = False
) -> tuple[tuple[Any, ...], str | None]:
    """A DynamoDB item image as the mapped row's values plus its unmapped attributes."""
    if not isinstance(image, dict):
        raise ConversionError("item image is not a map")
    values = []
    found = 0
    key_names = table.key_names
    for attribute in table.attributes:
        name = attribute.name
        value = image.get(name)
        if value is None:
            if name in key_names:
                raise ConversionError(f"key attribute {name!r} is missing")
            values.append(None)
            continue
        found += 1
        if type(value) is dict and len(value) == 1:  # the usual case, inline: this loop is hot
            ((tag, raw),) = value.items()
        else:
            tag, raw = typed_value(value)
        if keys_only and name not in key_names:
            values.append(None)
        elif tag == "NULL":
            if name in key_names:
                raise ConversionError(f"key attribute {name!r} is NULL")
            values.append(None)
        elif tag not in attribute.type.accepts:
            raise ConversionError(
                f"attribute {name!r} is {tag}, but its column {attribute.column} ({attribute.sql_type}) "
                f"takes {'/'.join(sorted(attribute.type.accepts))}"
            )
        else:
            try:
                values.append(attribute.type.convert(tag, raw))
            except ConversionError as error:
                raise ConversionError(f"attribute {name!r}: {error}") from None
    if keys_only or found == len(image):
        return tuple(values), None
    unknown = [name for name in image if table.attribute(name) is None]
    if table.unknown_attributes == "reject":
        raise ConversionError(f"attributes not in the mapping: {', '.join(sorted(unknown))}")
    extras = None
    if table.keeps_extras:
        try:
            extras = storable(to_json({name: to_plain(*typed_value(image[name])) for name in unknown}))
        except ConversionError as error:
            raise ConversionError(f"unmapped attribute: {error}") from None
    return tuple(values), extras
