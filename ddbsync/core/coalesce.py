"""Keep only the last change per item in a batch, so each row is written once per batch."""

from __future__ import annotations

from collections.abc import Iterable

from ddbsync.core.decode import Change


def last_change_per_item(changes: Iterable[Change]) -> list[Change]:
    """The highest-versioned change of every item, in order of first appearance.

    One change per key is also what lets one set-based statement touch each row at most once.
    """
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        key = (change.table.sql_table, change.item_key)
        kept = latest.get(key)
        if kept is None or change.version > kept.version:
            latest[key] = change
    return list(latest.values())
