"""Tombstones outlive the stream's memory of the item, then go.

A tombstone keeps an older change from bringing a deleted row back. Only stream records older than
the delete can do that, and DynamoDB keeps stream records for 24 hours (the event source mapping
gives up on them sooner, at its maximum record age), so two days is ample. A backfill must not load
an export older than this retention, or it could resurrect rows deleted since. A stored reject is
an older change too, replayable at any time: the tombstone of its item stays while it waits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ddbsync.core.apply import quote_ident
from schema.metadata import REJECTS_TABLE, TOMBSTONES_TABLE

TOMBSTONE_RETENTION = timedelta(hours=48)


def purge_tombstones(cursor: Any, older_than: timedelta = TOMBSTONE_RETENTION) -> int:
    """Delete tombstones older than `older_than` whose item has no reject waiting; returns how many went."""
    cursor.execute(
        f"DELETE FROM {quote_ident(TOMBSTONES_TABLE)} AS t WHERE t.deleted_at < now() - %s AND NOT EXISTS ("
        f"SELECT FROM {quote_ident(REJECTS_TABLE)} AS r "
        "WHERE r.replayed_at IS NULL AND r.sql_table = t.table_name AND r.item_key = t.item_key)",
        (older_than,),
    )
    return cursor.rowcount
