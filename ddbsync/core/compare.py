"""Is the SQL copy equal to the DynamoDB table seen through the mapping? Compared row by row, in PostgreSQL's types.

The items are decoded by the one decode (routing included) into the rows the apply statement would
write; PostgreSQL types them as it types a batch (`rows_query`), so a timestamp, a number or a jsonb
value compares by what it is, not by how it was spelt. Items the mapping cannot take (their records
are in the rejects) are left out on both sides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from ddbsync.core.apply import batch_document, rows_query, stored_rows_query
from ddbsync.core.decode import Change, decode_record
from schema.model import Mappings, TableMapping

ARN = "arn:aws:dynamodb:local:000000000000:table/{}/stream/compare"


@dataclass
class Comparison:
    """One SQL table against the items that belong in it."""

    table: TableMapping
    expected: int = 0
    actual: int = 0
    missing: list[tuple[Any, ...]] = field(default_factory=list)  # keys of items without their row
    unexpected: list[tuple[Any, ...]] = field(default_factory=list)  # keys of rows without their item
    different: list[tuple[Any, ...]] = field(default_factory=list)  # keys whose row differs from the item
    unfit: int = 0  # items the mapping cannot take, left out

    @property
    def equal(self) -> bool:
        return not (self.missing or self.unexpected or self.different)


def item_changes(mappings: Mappings, table_name: str, items: Iterable[dict[str, Any]]) -> list[Change]:
    """Items (DynamoDB JSON, binary as base64) as the rows they give; unfit items as deletions of their key."""
    changes: list[Change] = []
    for item in items:
        record = _record(table_name, "INSERT", item, item)
        decoded = decode_record(record, 0, mappings)
        if isinstance(decoded, list):
            changes += decoded
            continue
        keys = {name: item[name] for name in mappings.for_dynamodb_table(table_name).key_names if name in item}
        removal = decode_record(_record(table_name, "REMOVE", keys, None), 0, mappings)
        changes += removal if isinstance(removal, list) else []
    return changes


def _record(table_name: str, event: str, keys: dict[str, Any], image: dict[str, Any] | None) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if image is not None:
        dynamodb["NewImage"] = image
    return {"eventName": event, "eventSourceARN": ARN.format(table_name), "dynamodb": dynamodb}


def compare(cursor: Any, mappings: Mappings, table_name: str, items: Iterable[dict[str, Any]]) -> list[Comparison]:
    """Every SQL table of one DynamoDB table against its items."""
    by_table: dict[TableMapping, list[Change]] = defaultdict(list)
    for change in item_changes(mappings, table_name, items):
        by_table[change.table].append(change)
    source = mappings.for_dynamodb_table(table_name)
    return [compare_table(cursor, entity, by_table.get(entity, [])) for entity in source.entities]


def compare_table(cursor: Any, table: TableMapping, changes: list[Change]) -> Comparison:
    """One SQL table against the rows `changes` give; deletions name keys to leave out."""
    key = table.key_positions
    expected: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    skipped: set[tuple[Any, ...]] = set()
    if changes:
        cursor.execute(rows_query(table), (batch_document(table, changes),))
        for deleted, *row in cursor.fetchall():
            row_key = tuple(row[i] for i in key)
            if deleted:
                skipped.add(row_key)
            else:
                expected[row_key] = tuple(row)
    cursor.execute(stored_rows_query(table))
    actual = {tuple(row[i] for i in key): tuple(row) for row in cursor.fetchall()}
    for gone in skipped:
        actual.pop(gone, None)
    result = Comparison(table, len(expected), len(actual), unfit=len(skipped))
    result.missing = sorted(k for k in expected if k not in actual)
    result.unexpected = sorted(k for k in actual if k not in expected)
    result.different = sorted(k for k in expected if k in actual and expected[k] != actual[k])
    return result
