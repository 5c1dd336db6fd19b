"""The rejects table: records that cannot be applied, kept whole with their reason, for replay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from psycopg2.extras import execute_values

from ddbsync.core.apply import quote_ident
from ddbsync.core.decode import sequence_number
from schema.metadata import REJECTS_TABLE


@dataclass(frozen=True)
class RejectedRecord:
    """A stream record and why it was not applied."""

    record: dict[str, Any]
    reason: str
    table_name: str | None


def _record_json(record: dict[str, Any]) -> str:
    # Records from boto3 may hold datetimes or bytes; Lambda's JSON never does.
    return json.dumps(record, default=lambda value: value.hex() if isinstance(value, bytes) else str(value))


def write_rejects(cursor: Any, rejects: Sequence[RejectedRecord]) -> None:
    """Insert rejects in one statement, inside the caller's transaction."""
    if not rejects:
        return
    rows = [
        (
            r.table_name,
            r.record.get("eventName"),
            sequence_number(r.record),
            r.reason,
            _record_json(r.record),
        )
        for r in rejects
    ]
    execute_values(
        cursor,
        f"INSERT INTO {quote_ident(REJECTS_TABLE)} "
        "(dynamodb_table, event_name, sequence_number, reason, record) VALUES %s",
        rows,
    )
