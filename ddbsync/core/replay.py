"""Replaying rejects: once the mapping or the database can take them, stored records go through again.

Replays are safe at any time: every write is version-guarded, so a replayed record older than what
the table holds changes nothing. A reject is marked replayed once its record applied; records that
the current mapping still refuses stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ddbsync.core.apply import quote_ident
from ddbsync.core.batch import Replicator
from ddbsync.core.decode import Change, decode_record
from schema.metadata import REJECTS_TABLE


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    still_rejected: int
    retry: bool = False  # a retryable database error stopped the replay; nothing was marked


def pending_rejects(cursor: Any, dynamodb_table: str | None = None, limit: int = 1000) -> list[tuple[int, dict]]:
    """Rejects not yet replayed, oldest first."""
    where = "replayed_at IS NULL" + (" AND dynamodb_table = %(table)s" if dynamodb_table else "")
    cursor.execute(
        f"SELECT id, record FROM {quote_ident(REJECTS_TABLE)} WHERE {where} ORDER BY id LIMIT %(limit)s",
        {"table": dynamodb_table, "limit": limit},
    )
    return cursor.fetchall()


def replay_rejects(replicator: Replicator, dynamodb_table: str | None = None, limit: int = 1000) -> ReplayResult:
    """Apply the stored records the current mappings accept, and mark their rejects replayed."""
    with replicator.connection().cursor() as cursor:
        pending = pending_rejects(cursor, dynamodb_table, limit)
    ready = [(i, record) for i, record in pending if isinstance(decode_record(record, 0, replicator.mappings), Change)]
    if not ready:
        return ReplayResult(0, len(pending))
    result = replicator.process([record for _, record in ready])
    if result.retry_from is not None:
        return ReplayResult(0, len(pending), retry=True)
    with replicator.connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote_ident(REJECTS_TABLE)} SET replayed_at = now() WHERE id = ANY(%s)", ([i for i, _ in ready],)
        )
    return ReplayResult(len(ready) - result.rejected, len(pending) - len(ready) + result.rejected)
