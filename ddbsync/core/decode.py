"""Stream record -> a change to one SQL row, or a reject with its reason.

Pure functions from a record (Lambda's JSON shape: typed values, numbers as text, binary as base64)
to the row the mapping describes. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

from ddbsync.core.version import UNREADABLE_FIELD, VersionError, record_version
from schema.model import Attribute, Mappings, SourceTable, TableMapping
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
class Ignored:
    """A record of an item no entity matches, in a mapping whose `unmatched` policy is `ignore`."""

    position: int
    table_name: str | None
    changes: tuple[Change, ...] = ()  # deletes from the entity the item left, applied all the same


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that cannot be applied as it is, kept whole with the reason."""

    position: int
    reason: str
    table_name: str | None
    changes: tuple[Change, ...] = ()  # deletes from the entity the item left, applied all the same


Decoded = list[Change] | Reject | Ignored


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


def decode_record(record: dict[str, Any], position: int, mappings: Mappings) -> Decoded:
    """Decode one stream record through its table's mapping: the changes it makes to SQL rows.

    Usually one change. A single-table mapping routes the item to its entity; where entities are told
    by a non-key attribute, an item that changed entity is also deleted from the one it left (found
    from the old image, or, without one, from every entity whose key template fits the key).
    """
    table_name: str | None = None
    try:
        table_name = table_name_from_arn(record.get("eventSourceARN", ""))
        source = mappings.for_dynamodb_table(table_name)
        if source is None:
            return Reject(position, f"no mapping for DynamoDB table {table_name!r}", table_name)
        if UNREADABLE_FIELD in record:
            return Reject(position, str(record[UNREADABLE_FIELD]), table_name)
        dynamodb = record["dynamodb"]
        if dynamodb.get("StreamViewType") in UNUSABLE_VIEW_TYPES:
            check_view_type(dynamodb["StreamViewType"], f"table {table_name}")
        version = record_version(record)
        event = record.get("eventName")
        if event == "REMOVE":
            return _removal(source, dynamodb, version, position)
        if event not in ("INSERT", "MODIFY"):
            return Reject(position, f"unknown eventName {event!r}", table_name)
        image = dynamodb.get("NewImage")
        if image is None:
            raise ConfigurationError(
                f"table {table_name}: {event} record without NewImage; the stream must carry new images"
            )
        entity = source.only or source.route(image)
        left: list[Change] = []
        if source.routes_by_attribute and event == "MODIFY":
            old = dynamodb.get("OldImage")
            previous = _fitting(source, dynamodb["Keys"]) if old is None else [source.route(old)]
            moved = [e for e in previous if e is not None and e is not entity]
            left = _deletes(_fitting_among(moved, dynamodb["Keys"]), dynamodb["Keys"], version, position)
        if entity is None:  # the item left its entity for none: its old row goes all the same
            return _unmatched(source, dynamodb["Keys"], position, tuple(left))
        try:
            values, extras = decode_image(entity, image)
        except ConversionError as error:  # the new state is refused; the row it left goes all the same
            return Reject(position, str(error), table_name, tuple(left))
        return [Change(entity, item_key(entity, values), version, False, values, extras, position), *left]
    except (ConversionError, VersionError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = str(error) if not isinstance(error, KeyError) else f"record has no {error}"
        return Reject(position, reason, table_name)


def _removal(source: SourceTable, dynamodb: dict[str, Any], version: int, position: int) -> Decoded:
    """A REMOVE: the key finds the entity, or the old image does; without one, every entity that fits."""
    keys = dynamodb["Keys"]
    if not source.routes_by_attribute:
        entity = source.only or source.route(keys)
        return _unmatched(source, keys, position) if entity is None else _deletes([entity], keys, version, position)
    old = dynamodb.get("OldImage")
    entities = _fitting(source, keys) if old is None else [e for e in [source.route(old)] if e is not None]
    return _deletes(entities, keys, version, position) if entities else _unmatched(source, keys, position)


def _deletes(entities: list[TableMapping], keys: dict[str, Any], version: int, position: int) -> list[Change]:
    changes = []
    for entity in entities:
        values, _ = decode_image(entity, keys, keys_only=True)
        changes.append(Change(entity, item_key(entity, values), version, True, values, None, position))
    return changes


def _fitting(source: SourceTable, keys: dict[str, Any]) -> list[TableMapping]:
    """The entities whose key templates read this key: one of them, at most, holds the item."""
    return _fitting_among(source.entities, keys)


def _fitting_among(entities: Iterable[TableMapping], keys: dict[str, Any]) -> list[TableMapping]:
    """Of `entities`, those whose key templates read this key (no row of the others can hold it)."""
    fitting = []
    for entity in entities:
        try:
            decode_image(entity, keys, keys_only=True)
        except ConversionError:
            continue
        fitting.append(entity)
    return fitting


def _unmatched(
    source: SourceTable, keys: dict[str, Any], position: int, left: tuple[Change, ...] = ()
) -> Reject | Ignored:
    if source.unmatched == "ignore":
        return Ignored(position, source.name, left)
    shown = ", ".join(f"{name} = {to_plain(*typed_value(value))!r}" for name, value in keys.items())
    reason = f"no entity of {source.name} matches the item ({shown}); tried {source.describe_rules()}"
    return Reject(position, reason, source.name, left)


def decode_image(
    table: TableMapping, image: dict[str, Any], keys_only: bool = False
) -> tuple[tuple[Any, ...], str | None]:
    """A DynamoDB item image as the mapped row's values plus its unmapped attributes."""
    if not isinstance(image, dict):
        raise ConversionError("item image is not a map")
    if not table.simple:
        return _decode_entity(table, image, keys_only)
    values = []
    found = 0
    for name, accepts, convert, key, attribute in table.plan:  # hot: every value of every record
        value = image.get(name)
        if value is None:
            if key:
                raise ConversionError(f"key attribute {name!r} is missing")
            values.append(None)
            continue
        found += 1
        if keys_only and not key:
            values.append(None)
            continue
        if type(value) is dict and len(value) == 1:
            ((tag, raw),) = value.items()
            if tag in accepts:
                try:
                    values.append(convert(tag, raw))
                except ConversionError as error:
                    raise ConversionError(f"attribute {name!r}: {error}") from None
                continue
        values.append(_convert(attribute, value, key))
    if keys_only or found == len(image):
        return tuple(values), None
    return tuple(values), _extras(table, image)


def _convert(attribute: Attribute, value: Any, key: bool) -> Any:
    """One typed DynamoDB value as its column's parameter."""
    if type(value) is dict and len(value) == 1:  # the usual case, inline: this runs for every value
        ((tag, raw),) = value.items()
    else:
        tag, raw = typed_value(value)
    if tag == "NULL":
        if key:
            raise ConversionError(f"key attribute {attribute.name!r} is NULL")
        return None
    if tag not in attribute.type.accepts:
        raise ConversionError(
            f"attribute {attribute.name!r} is {tag}, but its column {attribute.column} ({attribute.sql_type}) "
            f"takes {'/'.join(sorted(attribute.type.accepts))}"
        )
    try:
        return attribute.type.convert(tag, raw)
    except ConversionError as error:
        raise ConversionError(f"attribute {attribute.name!r}: {error}") from None


def _extras(table: TableMapping, image: dict[str, Any]) -> str | None:
    """The item's attributes the row does not hold as columns (nor implies), as JSON; or the reject."""
    unknown = [name for name in image if name not in table.known_names]
    if not unknown:
        return None
    if table.unknown_attributes == "reject":
        refused = [name for name in unknown if name not in table.path_roots]
        for root in table.path_roots & set(unknown):
            refused += _unmapped_members(table, (root,), image[root])
        if refused:
            raise ConversionError(f"attributes not in the mapping: {', '.join(sorted(refused))}")
    if not table.keeps_extras:
        return None
    try:
        return storable(to_json({name: to_plain(*typed_value(image[name])) for name in unknown}))
    except ConversionError as error:
        raise ConversionError(f"unmapped attribute: {error}") from None


def _unmapped_members(table: TableMapping, path: tuple[str, ...], value: Any) -> list[str]:
    """Members of a mapped map that no path reads (`address.zip` beside a mapped `address.city`)."""
    tag, raw = typed_value(value)
    if tag != "M":
        return []
    found = []
    for name, member in raw.items():
        inner = (*path, name)
        if inner in table.path_prefixes:
            found += _unmapped_members(table, inner, member)
        elif inner not in table.mapped_paths:
            found.append(".".join(inner))
    return found


def _decode_entity(table: TableMapping, image: dict[str, Any], keys_only: bool) -> tuple[tuple[Any, ...], str | None]:
    """The general decode: key templates and constants, nested paths."""
    parts = _key_parts(table, image)
    key_names = table.key_names
    values = []
    for attribute in table.attributes:
        path = attribute.path
        if not path:
            values.append(_placeholder(table, attribute, parts[attribute.name]))
            continue
        key = len(path) == 1 and path[0] in key_names
        if keys_only and not key:
            values.append(None)
            continue
        value = image.get(path[0]) if len(path) == 1 else _walk(image, attribute)
        if value is None:
            if key:
                raise ConversionError(f"key attribute {path[0]!r} is missing")
            values.append(None)
        else:
            values.append(_convert(attribute, value, key))
    return tuple(values), None if keys_only else _extras(table, image)


def _key_parts(table: TableMapping, image: dict[str, Any]) -> dict[str, str]:
    """The placeholders' text read from the key through the entity's templates; its constants checked."""
    parts: dict[str, str] = {}
    for template in table.templates:
        raw = _key_string(image, template.attribute)
        found = template.parse(raw)
        if found is None:
            raise ConversionError(
                f"key {template.attribute} = {raw!r} does not fit the template {template.text!r} of {table.describe()}"
            )
        parts.update(found)
    for name, expected in table.constants:
        raw = _key_string(image, name)
        if raw != expected:
            raise ConversionError(f"key {name} = {raw!r} is not {expected!r}, as {table.describe()} requires")
    return parts


def _key_string(image: dict[str, Any], name: str) -> str:
    value = image.get(name)
    if value is None:
        raise ConversionError(f"key attribute {name!r} is missing")
    tag, raw = typed_value(value)
    if tag not in ("S", "N"):
        raise ConversionError(f"key attribute {name!r} is {tag}; a template or match reads a string")
    return str(raw)


def _placeholder(table: TableMapping, attribute: Attribute, text: str) -> Any:
    """A placeholder's text as its column's value; a number must give the same text back (`007` is not 7)."""
    try:
        value = attribute.type.convert(attribute.ddb_type, text)
    except ConversionError as error:
        raise ConversionError(f"key part {attribute.name} of {table.describe()}: {error}") from None
    if attribute.ddb_type == "N" and str(value) != text:
        raise ConversionError(
            f"key part {attribute.name} = {text!r} of {table.describe()} would come back as {value}: "
            "the key could not be rebuilt from the row"
        )
    return value


def _walk(image: dict[str, Any], attribute: Attribute) -> Any:
    """The value at a nested path: None where a map lacks it; a reject where the path crosses a non-map."""
    value = image.get(attribute.path[0])
    for depth, name in enumerate(attribute.path[1:], 1):
        if value is None:
            return None
        tag, raw = typed_value(value)
        if tag == "NULL":
            return None
        if tag != "M":
            through = ".".join(attribute.path[:depth])
            raise ConversionError(f"path {attribute.name!r}: {through} is {tag}, not a map")
        value = raw.get(name)
    return value
