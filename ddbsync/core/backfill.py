"""Backfill: an export's items through the replication core, one data file per transaction.

Each line of a data file becomes the record the stream would have carried for it (an INSERT of the
item, or for an incremental export the change it sums up), with its version set by the export:
- a full export's rows sit just below the export's second (`snapshot_version`), so a stream change
  from that second on wins, an older one loses, and a tombstone newer than the export keeps its item
  deleted;
- an incremental export's lines carry their own `WriteTime`.
So the one decode (mapping, types, entities, rejects) and the one version-guarded merge (the COPY
transport, chunk by chunk) do all the work, and a backfill running beside the live stream converges
with it in any order. The ledger (`ddbsync_exports`, `ddbsync_export_files`) is written in the file's
own transaction: a crash commits nothing of a file, and a re-run skips what is in.

A full export is the whole table: once its last file is in, the rows older than the export that it
did not hold are deleted, with tombstones (`finish`). Nothing here talks to AWS.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

import psycopg2

from ddbsync.core.apply import ApplyCounts, quote_ident
from ddbsync.core.batch import DecodedBatch, Replicator, decode_batch, pause_before
from ddbsync.core.decode import Change, item_key
from ddbsync.core.errors import ErrorKind, describe, error_kind
from ddbsync.core.version import VERSION_FIELD, snapshot_version, write_time_version
from ddbsync.exports.manifest import DataFile, ExportError, ExportSummary
from schema.metadata import EXPORT_FILES_TABLE, EXPORTS_TABLE, REJECTS_TABLE, TOMBSTONES_TABLE, VERSION_COLUMN
from schema.model import SourceTable, TableMapping
from schema.types import canonical_number

logger = logging.getLogger(__name__)

CHUNK = 10_000  # lines decoded and merged at a time: large enough for COPY, small enough to keep memory flat
SUPPORTED_FORMAT = "DYNAMODB_JSON"

OpenLines = Callable[[], Iterable[dict[str, Any]]]


@dataclass
class FileResult:
    """What loading one data file did (`skipped`: the ledger says it was in already)."""

    key: str
    items: int = 0
    counts: ApplyCounts = ApplyCounts()
    rejected: int = 0
    ignored: int = 0
    skipped: bool = False
    attempts: int = 0


def _source_arn(table_name: str) -> str:
    return f"arn:aws:dynamodb:::table/{table_name}/export"


def export_records(lines: Iterable[dict[str, Any]], summary: ExportSummary, source: SourceTable) -> Iterator[dict]:
    """Each export line as the stream record of the change it stands for, versioned by the export."""
    arn = _source_arn(summary.table_name)
    key_names = source.key_names
    if not summary.incremental:
        version = str(snapshot_version(summary.export_time))
        for line in lines:
            item = line.get("Item") if isinstance(line, dict) else None
            keys = {name: item[name] for name in key_names if name in item} if isinstance(item, dict) else {}
            dynamodb = {"Keys": keys, "NewImage": item, "StreamViewType": "NEW_IMAGE"}
            yield {"eventName": "INSERT", "eventSourceARN": arn, "dynamodb": dynamodb, VERSION_FIELD: version}
        return
    for line in lines:
        yield _incremental_record(line, arn)


def _incremental_record(line: Any, arn: str) -> dict[str, Any]:
    """An incremental export's line: the item's state at the window's end (none: deleted), and at its start."""
    if not isinstance(line, dict):
        return {"eventName": "UNREADABLE", "eventSourceARN": arn, "dynamodb": {}, "line": line}
    metadata = line.get("Metadata") or {}
    try:
        version: Any = str(write_time_version(metadata.get("WriteTime")))
    except ValueError:
        version = metadata.get("WriteTime")  # the decode rejects it, with the line kept whole
    dynamodb = {key: line[key] for key in ("Keys", "NewImage", "OldImage") if key in line}
    event = "REMOVE" if "NewImage" not in line else "MODIFY" if "OldImage" in line else "INSERT"
    dynamodb["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    return {"eventName": event, "eventSourceARN": arn, "dynamodb": dynamodb, VERSION_FIELD: version}


def _chunks(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Backfill:
    """Loads one export into PostgreSQL through a `Replicator` (its connection, mappings, apply, rejects)."""

    def __init__(self, replicator: Replicator, summary: ExportSummary, data_files: int, force: bool = False) -> None:
        if summary.output_format != SUPPORTED_FORMAT:
            raise ExportError(
                f"export {summary.export_arn} is {summary.output_format}; only DYNAMODB_JSON exports load "
                "(export again with --export-format DYNAMODB_JSON)"
            )
        source = replicator.mappings.for_dynamodb_table(summary.table_name)
        if source is None:
            raise ExportError(
                f"no mapping for DynamoDB table {summary.table_name!r}: add one (schema/mappings or $DDBSYNC_MAPPINGS)"
            )
        age = datetime.now(timezone.utc) - summary.export_time
        if age > replicator.tombstone_retention and not force:
            raise ExportError(
                f"export of {summary.export_time:%Y-%m-%d %H:%M:%S} UTC is older than the tombstone retention "
                f"({replicator.tombstone_retention}): it could bring back items deleted since; take a new export, "
                "or pass --force if nothing was deleted since"
            )
        self.replicator = replicator
        self.summary = summary
        self.source = source
        self.data_files = data_files
        self.chunk = CHUNK

    def begin(self) -> set[str]:
        """Record the export in the ledger (once); the data files already loaded."""
        summary = self.summary
        with self.replicator.connection().cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {EXPORTS_TABLE} (export_arn, dynamodb_table, export_type, export_time, data_files, "
                "item_count) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (export_arn) DO NOTHING",
                (
                    summary.export_arn,
                    summary.table_name,
                    summary.export_type,
                    summary.export_time,
                    self.data_files,
                    summary.item_count,
                ),
            )
            return self._loaded(cursor)

    def _loaded(self, cursor: Any) -> set[str]:
        cursor.execute(f"SELECT data_file FROM {EXPORT_FILES_TABLE} WHERE export_arn = %s", (self.summary.export_arn,))
        return {key for (key,) in cursor.fetchall()}

    def load_file(
        self,
        data_file: DataFile,
        open_lines: OpenLines,
        deadline: float | None = None,
        on_items: Callable[[int], None] | None = None,
    ) -> FileResult:
        """Load one data file in one transaction, waiting for the database until `deadline` (monotonic).

        `open_lines` opens the file anew for each try and raises `FileRefused` at its end if the file
        fails its checks; then nothing of it is committed. Past the deadline the database's error is raised.
        """
        result = FileResult(data_file.key)
        while True:
            result.attempts += 1
            try:
                return self._load_once(data_file, open_lines, result, on_items)
            except BaseException as error:
                self.replicator.discard()
                if error_kind(error) is not ErrorKind.WAIT:
                    raise
                self.replicator.outage.failed(error)
                pause = pause_before(result.attempts - 1)
                if deadline is None or time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                if on_items is not None:
                    on_items(-result.items)  # the try's items are undone
                result = FileResult(data_file.key, attempts=result.attempts)

    def _load_once(
        self,
        data_file: DataFile,
        open_lines: OpenLines,
        result: FileResult,
        on_items: Callable[[int], None] | None,
    ) -> FileResult:
        replicator = self.replicator
        connection = replicator.connection()
        entities = list(self.source.entities)
        with connection.cursor() as cursor:
            replicator.create_stages(cursor, entities)
            cursor.execute("BEGIN")
            try:
                cursor.execute(
                    f"SELECT 1 FROM {EXPORT_FILES_TABLE} WHERE export_arn = %s AND data_file = %s",
                    (self.summary.export_arn, data_file.key),
                )
                if cursor.fetchone():
                    cursor.execute("ROLLBACK")
                    result.skipped = True
                    return result
                for records in _chunks(export_records(open_lines(), self.summary, self.source), self.chunk):
                    batch = decode_batch(records, replicator.mappings)
                    counts, late = replicator.apply_in_transaction(cursor, batch, records)
                    replicator.clear_stages(cursor, entities)
                    result.items += len(records)
                    result.counts += counts
                    result.rejected += len(batch.rejects) + len(late)
                    result.ignored += batch.ignored
                    if on_items is not None:
                        on_items(len(records))
                cursor.execute(
                    f"INSERT INTO {EXPORT_FILES_TABLE} (export_arn, data_file, items, upserted, deleted, rejected) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        self.summary.export_arn,
                        data_file.key,
                        result.items,
                        result.counts.upserted,
                        result.counts.deleted,
                        result.rejected,
                    ),
                )
                cursor.execute("COMMIT")
            except BaseException:
                if not connection.closed:
                    with suppress(psycopg2.Error):
                        cursor.execute("ROLLBACK")
                raise
        replicator.outage.recovered()
        return result

    def finish(self, deadline: float | None = None) -> int | None:
        """Once every data file is in: a full export deletes the rows it lacks; the export is marked finished.

        Returns the rows deleted, or None while files are missing. Safe to call any number of times,
        from any number of loaders: the deletes are version-guarded like any other.
        """
        with self.replicator.connection().cursor() as cursor:
            if len(self._loaded(cursor)) < self.data_files:
                return None
        deleted = 0
        if not self.summary.incremental:
            for entity in self.source.entities:
                deleted += self._delete_rows_not_exported(entity, deadline)
        with self.replicator.connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {EXPORTS_TABLE} SET finished_at = now(), deleted = %s "
                "WHERE export_arn = %s AND finished_at IS NULL",
                (deleted, self.summary.export_arn),
            )
        return deleted

    def _delete_rows_not_exported(self, table: TableMapping, deadline: float | None) -> int:
        """Delete (with tombstones) the rows of `table` older than the export: the export did not hold them.

        Every row the export held now carries the snapshot version or a newer stream version, so what
        is below it was deleted in DynamoDB before the export. An item whose export line was refused
        keeps its row (its line waits in the rejects, not absent). An older reject still waiting, of
        an item the export did not hold, gets a tombstone too: replaying it must not bring the item back.
        """
        version = snapshot_version(self.summary.export_time)
        keys = [table.attributes[i] for i in table.key_positions]
        columns = ", ".join(quote_ident(a.column) for a in keys)
        rejects = quote_ident(REJECTS_TABLE)
        with self.replicator.connection().cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {quote_ident(table.sql_table)} WHERE {quote_ident(VERSION_COLUMN)} < %s",
                (version,),
            )
            stale = cursor.fetchall()
            cursor.execute(
                f"SELECT item_key, max(version) FROM {rejects} WHERE replayed_at IS NULL AND sql_table = %s "
                "AND item_key IS NOT NULL AND version <= %s GROUP BY item_key",
                (table.sql_table, version),
            )
            waiting = dict(cursor.fetchall())
        refused = {key for key, newest in waiting.items() if newest == version}  # this export's own refusals
        changes = []
        width = len(table.attributes)
        for row in stale:
            values: list[Any] = [None] * width
            for position, value in zip(table.key_positions, row):
                values[position] = _key_value(value)
            key = item_key(table, tuple(values))
            if key not in refused:
                changes.append(Change(table, key, version, True, tuple(values), None, len(changes)))
        deleted = 0
        for start in range(0, len(changes), self.chunk):
            deleted += self._apply_deletes(changes[start : start + self.chunk], deadline)
        self._bury(table, sorted(set(waiting) - refused - {c.item_key for c in changes}), version)
        if deleted:
            logger.info("%s: deleted %d rows the export did not hold", table.sql_table, deleted)
        return deleted

    def _bury(self, table: TableMapping, keys: list[str], version: int) -> None:
        """Tombstones at the export's version for items it did not hold (a newer tombstone stays)."""
        if not keys:
            return
        with self.replicator.connection().cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote_ident(TOMBSTONES_TABLE)} AS x (table_name, item_key, version) "
                "SELECT %s, unnest(%s::text[]), %s "
                "ON CONFLICT (table_name, item_key) DO UPDATE SET version = EXCLUDED.version, deleted_at = now() "
                "WHERE x.version < EXCLUDED.version",
                (table.sql_table, keys, version),
            )

    def _apply_deletes(self, changes: list[Change], deadline: float | None) -> int:
        batch = DecodedBatch(changes, changes, [], 0)
        attempts = 0
        while True:
            attempts += 1
            connection = self.replicator.connection()
            try:
                with connection.cursor() as cursor:
                    self.replicator.create_stages(cursor, [changes[0].table])
                    cursor.execute("BEGIN")
                    counts, _ = self.replicator.apply_in_transaction(cursor, batch, [{} for _ in changes])
                    cursor.execute("COMMIT")
                return counts.deleted
            except BaseException as error:
                self.replicator.discard()
                if error_kind(error) is not ErrorKind.WAIT:
                    raise
                pause = pause_before(attempts - 1)
                if deadline is None or time.monotonic() + pause >= deadline:
                    raise
                logger.warning("waiting for the database: %s", describe(error))
                time.sleep(pause)


def _key_value(value: Any) -> Any:
    """A key column's value as the decode gives it, so its digest equals the tombstone's and the reject's."""
    if isinstance(value, Decimal):
        return canonical_number(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value
