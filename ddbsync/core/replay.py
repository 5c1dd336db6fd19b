"""Replaying rejects: once the mapping or the database can take them, stored records go through again.

Replays are safe at any time: every write is version-guarded, so a replayed record older than what
the table holds changes nothing, and the tombstone of an item with a reject waiting is kept (see
`tombstones.py`), so a replay never brings back an item deleted since. A reject is marked replayed
only once its record applied; records still refused stay pending. The replay pages through every
pending reject, so rejects still refused never hide the ones behind them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ddbsync.core.apply import quote_ident
from ddbsync.core.batch import Replicator
from ddbsync.core.decode import decode_record
from schema.metadata import REJECTS_TABLE

PAGE = 1000
WAIT_SECONDS = 60.0  # how long a page may wait for the database (a serialization failure, say)


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    still_rejected: int
    retry: bool = False  # the database stayed away: the replay stopped; what it marked is applied


def pending_rejects(
    cursor: Any, dynamodb_table: str | None = None, limit: int = PAGE, after: int = 0
) -> list[tuple[int, dict]]:
    """Rejects not yet replayed with an id above `after`, oldest first."""
    where = "replayed_at IS NULL AND id > %(after)s" + (" AND dynamodb_table = %(table)s" if dynamodb_table else "")
    cursor.execute(
        f"SELECT id, record FROM {quote_ident(REJECTS_TABLE)} WHERE {where} ORDER BY id LIMIT %(limit)s",
        {"table": dynamodb_table, "limit": limit, "after": after},
    )
    return cursor.fetchall()


def replay_rejects(replicator: Replicator, dynamodb_table: str | None = None, limit: int = 1000) -> ReplayResult:
    """Apply up to `limit` stored records the current mappings accept, marking their rejects replayed."""
    replayed = still = 0
    after = 0
    while replayed < limit:
        with replicator.connection().cursor() as cursor:
            page = pending_rejects(cursor, dynamodb_table, PAGE, after)
        if not page:
            break
        after = page[-1][0]
        ready = [(i, r) for i, r in page if isinstance(decode_record(r, 0, replicator.mappings), list)]
        still += len(page) - len(ready)
        ready = ready[: limit - replayed]
        if not ready:
            continue
        result = replicator.process([record for _, record in ready], time.monotonic() + WAIT_SECONDS)
        if result.retry_from is not None:
            return ReplayResult(replayed, still + len(ready), retry=True)
        refused = set(result.rejected_positions)
        applied = [i for position, (i, _) in enumerate(ready) if position not in refused]
        with replicator.connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote_ident(REJECTS_TABLE)} SET replayed_at = now() WHERE id = ANY(%s)", (applied,)
            )
        replayed += len(applied)
        still += len(ready) - len(applied)
    return ReplayResult(replayed, still)
