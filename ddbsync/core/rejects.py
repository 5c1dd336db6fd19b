"""The rejects table: records that cannot be applied, kept whole with their reason, for replay.

A reject is always written: NULs and lone surrogates in the reason are escaped, the record is ASCII
JSON (escapes kept byte for byte), and a reject the database still refuses is stored as one JSON
string of reason and record, never taking the batch's good records with it. Each reject names its
item (the same digest a tombstone carries) and its version, so a record delivered again adds no
second reject, and the item's tombstone is kept while the reject waits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import psycopg2
from psycopg2.extras import execute_values

from ddbsync.core.apply import quote_ident
from ddbsync.core.decode import decode_record, sequence_number
from ddbsync.core.errors import ErrorKind, describe, error_kind
from ddbsync.core.version import VERSION_FIELD, record_version
from schema.metadata import REJECTS_TABLE
from schema.model import Mappings

logger = logging.getLogger(__name__)

COLUMNS = "(dynamodb_table, event_name, sequence_number, reason, record, sql_table, item_key, version)"


@dataclass(frozen=True)
class RejectedRecord:
    """A stream record and why it was not applied, with its item and version where they are known."""

    record: dict[str, Any]
    reason: str
    table_name: str | None
    sql_table: str | None = None
    item_key: str | None = None
    version: int | None = None
    position: int | None = None  # index of the record in its batch


def identified(reject: RejectedRecord, mappings: Mappings) -> RejectedRecord:
    """The reject with its SQL table, item digest and version filled in from the record, as far as it allows.

    The key goes through the mapping when it can (then it equals the tombstone's key); otherwise the
    digest of the raw `Keys` still tells two deliveries of one record apart from two records.
    """
    if reject.item_key is not None:
        return reject
    dynamodb = reject.record.get("dynamodb") if isinstance(reject.record, dict) else None
    if not isinstance(dynamodb, dict):
        return reject
    try:
        version: int | None = record_version(reject.record)
    except ValueError:
        version = None
    keys = dynamodb.get("Keys")
    if keys is None and isinstance(dynamodb.get("NewImage"), dict):
        keys = dynamodb["NewImage"]  # a record built from an export line: the item holds its key
    sql_table = key = None
    # The item's key as a REMOVE of it would find its row; its image tells the entity where an
    # attribute does (the record's own image: the state the reject is about).
    removal = {
        "eventName": "REMOVE",
        "eventSourceARN": reject.record.get("eventSourceARN", ""),
        "dynamodb": {
            "Keys": keys,
            "SequenceNumber": dynamodb.get("SequenceNumber"),
            "ApproximateCreationDateTime": dynamodb.get("ApproximateCreationDateTime"),
        },
    }
    if VERSION_FIELD in reject.record:
        removal[VERSION_FIELD] = reject.record[VERSION_FIELD]
    image = dynamodb.get("NewImage") or dynamodb.get("OldImage")
    if isinstance(image, dict):
        removal["dynamodb"]["OldImage"] = image
    found = decode_record(removal, 0, mappings) if isinstance(keys, dict) else None
    if isinstance(found, list) and len(found) == 1:
        sql_table, key = found[0].table.sql_table, found[0].item_key
    elif keys is not None:
        key = hashlib.sha256(_json(keys).encode()).hexdigest()
    return RejectedRecord(reject.record, reject.reason, reject.table_name, sql_table, key, version, reject.position)


def _json(value: Any) -> str:
    # Records from boto3 may hold datetimes or bytes; Lambda's JSON never does. ASCII escapes keep NULs.
    return json.dumps(value, sort_keys=True, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))


def _row(reject: RejectedRecord, record_json: str, reason: str) -> tuple[Any, ...]:
    event, sequence = (
        (reject.record.get("eventName"), sequence_number(reject.record))
        if isinstance(reject.record, dict)
        else (None, None)
    )
    return (
        reject.table_name,
        _storable_text(event) if isinstance(event, str) else None,
        _storable_text(sequence) if isinstance(sequence, str) else None,
        _storable_text(reason),
        record_json,
        reject.sql_table,
        reject.item_key,
        None if reject.version is None else str(reject.version),
    )


def _storable_text(text: str) -> str:
    """Text PostgreSQL can hold: NUL and lone surrogates (an attribute name may hold either) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def _insert(cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    execute_values(
        cursor,
        f"INSERT INTO {quote_ident(REJECTS_TABLE)} {COLUMNS} VALUES %s "
        "ON CONFLICT (dynamodb_table, item_key, version) DO NOTHING",
        rows,
    )


def write_rejects(cursor: Any, rejects: Sequence[RejectedRecord], mappings: Mappings) -> None:
    """Insert rejects inside the caller's transaction; whatever one of them holds, none is lost."""
    if not rejects:
        return
    rejects = [identified(r, mappings) for r in rejects]
    if _attempt(cursor, [_row(r, _json(r.record), r.reason) for r in rejects]):
        return
    for reject in rejects:
        if _attempt(cursor, [_row(reject, _json(reject.record), reject.reason)]):
            continue
        # The database refused this reject as it is (a constraint of the user's, say): keep the record
        # and the reason as one JSON string, under a reason that says so, rather than lose either.
        logger.warning("a reject is stored as text: the database refused it as it was")
        kept = json.dumps({"reason": reject.reason, "record": _json(reject.record)})
        _insert(cursor, [_row(reject, json.dumps(kept), "the reject is stored as text; see its record")])


def _attempt(cursor: Any, rows: Sequence[tuple[Any, ...]]) -> bool:
    """Insert under a savepoint; False (and nothing written) if the database refused a value."""
    cursor.execute("SAVEPOINT ddbsync_rejects")
    try:
        _insert(cursor, rows)
    except psycopg2.Error as error:
        if error_kind(error) is not ErrorKind.DATA:
            raise
        logger.warning("rejects refused as a whole: %s", describe(error))
        cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_rejects")
        return False
    cursor.execute("RELEASE SAVEPOINT ddbsync_rejects")
    return True
