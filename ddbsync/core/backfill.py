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
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

import psycopg2

from ddbsync.core.apply import ApplyCounts, quote_ident
from ddbsync.core.batch import DecodedBatch, Replicator, by_table, decode_batch, pause_before
from ddbsync.core.connection import transaction
from ddbsync.core.decode import Change, item_key
from ddbsync.core.errors import ErrorKind, describe, error_kind
from ddbsync.core.rejects import write_rejects
from ddbsync.core.version import (
    UNREADABLE_FIELD,
    VERSION_FIELD,
    snapshot_version,
    stored_version,
    write_time_version,
)
from ddbsync.exports.manifest import DataFile, ExportError, ExportSummary, FileRefused
from schema.metadata import EXPORT_FILES_TABLE, EXPORTS_TABLE, REJECTS_TABLE, TOMBSTONES_TABLE, VERSION_COLUMN
from schema.model import TableMapping
from schema.types import canonical_number

logger = logging.getLogger(__name__)

CHUNK = 10_000  # lines decoded and merged at a time: large enough for COPY, small enough to keep memory flat
SUPPORTED_FORMAT = "DYNAMODB_JSON"

OpenLines = Callable[[], Iterable[dict[str, Any]]]


FILE_STAGE = "file"  # the stage kind of a data file (see `ddbsync.core.apply.stage_statement`)


@dataclass
class _Staged:
    """A data file decoded into its stages on `connection` (they live as long as it does)."""

    connection: Any
    items: int = 0
    rejects: list[Any] = field(default_factory=list)
    ignored: int = 0


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


def export_records(lines: Iterable[dict[str, Any]], summary: ExportSummary) -> Iterator[dict]:
    """Each export line as the stream record of the change it stands for, versioned by the export."""
    arn = _source_arn(summary.table_name)
    if not summary.incremental:
        version = snapshot_version(summary.export_time)
        for line in lines:  # no `Keys`: an INSERT's item holds them (a reject finds them there)
            item = line.get("Item") if isinstance(line, dict) else None
            if not isinstance(item, dict):
                yield _unreadable(arn, line, "export line holds no Item")
                continue
            yield {"eventName": "INSERT", "eventSourceARN": arn, "dynamodb": {"NewImage": item}, VERSION_FIELD: version}
        return
    # A line's WriteTime orders it; in the window's last second it stays below that second, as a full
    # export's rows do, since stream versions count whole seconds: a change after the window must win.
    ceiling = snapshot_version(summary.to_time) if summary.to_time else None
    for line in lines:
        yield _incremental_record(line, arn, ceiling)


def _unreadable(arn: str, line: Any, reason: str) -> dict[str, Any]:
    """A record the decode rejects with `reason`, keeping the line whole for the rejects table."""
    return {"eventName": "EXPORT", "eventSourceARN": arn, "dynamodb": {}, "line": line, UNREADABLE_FIELD: reason}


def _write_time(metadata: Any) -> int | None:
    """`Metadata.WriteTime` in microseconds, as a JSON number, a string of digits or a DynamoDB `{"N": ...}`."""
    value = metadata.get("WriteTime") if isinstance(metadata, dict) else None
    if isinstance(value, dict) and len(value) == 1:
        value = value.get("N")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if type(value) is int else None


def _incremental_record(line: Any, arn: str, ceiling: int | None) -> dict[str, Any]:
    """An incremental export's line: the item's state at the window's end (none: deleted), and at its start.

    An update is a MODIFY even without an old image (the NEW_IMAGE view), so the decode also removes
    the item from an entity it left.
    """
    if not isinstance(line, dict):
        return _unreadable(arn, line, "incremental export line is not a JSON object")
    write_time = _write_time(line.get("Metadata"))
    if write_time is None:
        reason = f"incremental export line has no WriteTime in microseconds: {line.get('Metadata')!r}"
        return _unreadable(arn, line, reason)
    version = write_time_version(write_time)
    if ceiling is not None:
        version = min(version, ceiling)
    dynamodb = {key: line[key] for key in ("Keys", "NewImage", "OldImage") if key in line}
    event = "MODIFY" if "NewImage" in line else "REMOVE"
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
        self.replicator = replicator
        self.summary = summary
        self.source = source
        self.entities = sorted(source.entities, key=lambda entity: entity.sql_table)  # one lock order
        self.data_files = data_files
        self.force = force
        self.chunk = CHUNK
        if datetime.now(timezone.utc) - summary.export_time > replicator.tombstone_retention and not force:
            raise ExportError(self._too_old())  # at once; each file checks again by the database's clock

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
        """Load one data file, committed by one short transaction, waiting for the database until `deadline`.

        The file is first decoded into a stage of its own (session temp tables filled by COPY, outside
        any transaction), which also runs its checks: `open_lines` raises `FileRefused` at the end of
        a file that is not the one the manifest describes, and then nothing of it is merged. Then one
        transaction locks the file's tables against concurrent writers (the stream waits a moment
        rather than conflicting), merges the stage with one version-guarded statement, stores the
        rejects and the ledger row, and commits. A long load beside a busy stream would otherwise never
        commit: any stream change to one of its items aborts a serializable transaction that old.
        """
        result = FileResult(data_file.key)
        staged: _Staged | None = None
        counted = [0]  # items reported to `on_items` by the stagings so far

        def count(items: int) -> None:
            counted[0] += items
            if on_items is not None:
                on_items(items)

        def attempt(tries: int) -> FileResult:
            nonlocal staged
            result.attempts = tries
            if staged is None or staged.connection is not self.replicator.connection():
                staged = None
                with self.replicator.connection().cursor() as cursor:
                    if self._is_loaded(cursor, data_file):
                        return replace(result, skipped=True)
                count(-counted[0])  # a staging begins again: its items are counted again
                staged = self._stage(open_lines, count)
            return self._merge(data_file, staged, result, open_lines)

        def keeps_stage(error: BaseException) -> bool:
            """A serialization failure or deadlock keeps the stage: only the merge is tried again.

            Anything else that waits (a read-only instance after a failover, a lost connection) needs
            a new connection, and the file is staged again on it.
            """
            code = getattr(error, "pgcode", None) or ""
            return staged is not None and not staged.connection.closed and code.startswith("40")

        return self._waiting(attempt, deadline, keeps_stage)

    def _waiting(
        self,
        attempt: Callable[[int], Any],
        deadline: float | None,
        keeps_connection: Callable[[BaseException], bool] = lambda error: False,
    ) -> Any:
        """`attempt(try number)` until it succeeds; an error that may pass waits with backoff until `deadline`."""
        tries = 0
        while True:
            tries += 1
            try:
                return attempt(tries)
            except BaseException as error:
                waits = error_kind(error) is ErrorKind.WAIT
                if not waits or not keeps_connection(error):
                    self.replicator.discard()
                if not waits:
                    raise
                self.replicator.outage.failed(error)
                pause = pause_before(tries - 1)
                if deadline is None or time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)

    def _is_loaded(self, cursor: Any, data_file: DataFile) -> bool:
        """Whether the ledger holds the file (inside the file's transaction: whether another loader committed it)."""
        cursor.execute(
            f"SELECT 1 FROM {EXPORT_FILES_TABLE} WHERE export_arn = %s AND data_file = %s",
            (self.summary.export_arn, data_file.key),
        )
        return cursor.fetchone() is not None

    def _stage(self, open_lines: OpenLines, on_items: Callable[[int], None] | None) -> _Staged:
        """Decode the file into its stages, chunk by chunk, so memory stays flat in the file's size.

        Its rejects wait in memory for the merge's transaction: a file whose every line is refused
        (a mapping that does not fit the table at all) holds them all.
        """
        replicator = self.replicator
        connection = replicator.connection()
        applier = replicator.applier
        staged = _Staged(connection)
        with connection.cursor() as cursor:
            applier.create_stages(cursor, self.entities, FILE_STAGE)
            applier.create_stages(cursor, self.entities)  # for isolating a refused value, if it comes to that
            applier.clear_stages(cursor, self.entities, FILE_STAGE)
            for records in _chunks(export_records(open_lines(), self.summary), self.chunk):
                batch = decode_batch(records, replicator.mappings)
                for table, changes in by_table(batch.changes):
                    applier.copy_to_stage(cursor, table, changes, FILE_STAGE)  # autocommit: no snapshot held
                staged.items += len(records)
                staged.rejects += batch.rejects
                staged.ignored += batch.ignored
                if on_items is not None:
                    on_items(len(records))
        return staged

    def _merge(self, data_file: DataFile, staged: _Staged, result: FileResult, open_lines: OpenLines) -> FileResult:
        """The file's one transaction: lock, check the export's age, merge, rejects, ledger, commit."""
        replicator = self.replicator
        connection = staged.connection
        with connection.cursor() as cursor:
            with transaction(cursor):
                self._lock(cursor)
                self._check_age(cursor)
                if self._is_loaded(cursor, data_file):  # another loader committed it meanwhile
                    return replace(result, skipped=True)
                cursor.execute("SAVEPOINT ddbsync_file")
                try:
                    counts, _ = replicator.applier.apply_stages(cursor, self.entities, FILE_STAGE)
                    late: list[Any] = []
                except psycopg2.Error as error:
                    if error.pgcode == "21000":  # ON CONFLICT met one row twice: the file repeats an item
                        raise FileRefused(f"{data_file.key}: an item appears twice in the file") from None
                    if error_kind(error) is not ErrorKind.DATA:
                        raise
                    # A value the database refuses: go through the file again, isolating it (rare and slow).
                    logger.warning("a value did not fit the database, isolating it: %s", describe(error))
                    cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_file")
                    counts, late = self._apply_isolating(cursor, open_lines)
                write_rejects(cursor, staged.rejects, replicator.mappings)
                result = replace(
                    result,
                    items=staged.items,
                    counts=counts,
                    rejected=len(staged.rejects) + len(late),
                    ignored=staged.ignored,
                )
                cursor.execute(
                    f"INSERT INTO {EXPORT_FILES_TABLE} (export_arn, data_file, items, upserted, deleted, rejected) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (self.summary.export_arn, data_file.key, result.items, counts.upserted, counts.deleted,
                     result.rejected),
                )  # fmt: skip
            replicator.applier.clear_stages(cursor, self.entities, FILE_STAGE)
        replicator.outage.recovered()
        return result

    def _apply_isolating(self, cursor: Any, open_lines: OpenLines) -> tuple[ApplyCounts, list[Any]]:
        """The file chunk by chunk through the stream's apply, which rejects a refused row and keeps the rest."""
        replicator = self.replicator
        counts, late_rejects = ApplyCounts(), []
        for records in _chunks(export_records(open_lines(), self.summary), self.chunk):
            batch = decode_batch(records, replicator.mappings)
            batch = DecodedBatch(batch.history, batch.changes, [], batch.ignored)  # its rejects are staged
            part, late = replicator.apply_in_transaction(cursor, batch, records)
            replicator.applier.clear_stages(cursor, self.entities)
            counts += part
            late_rejects += late
        return counts, late_rejects

    def _lock(self, cursor: Any) -> None:
        """Keep writers of the file's tables waiting until it commits (not other readers, nor itself twice)."""
        tables = ", ".join(quote_ident(t.sql_table) for t in self.entities)
        cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")

    def _check_age(self, cursor: Any) -> None:
        """Refuse an export older than the tombstone retention, by the database's clock (its purge's)."""
        if self.force:
            return
        cursor.execute("SELECT now() - %s > %s", (self.summary.export_time, self.replicator.tombstone_retention))
        if cursor.fetchone()[0]:
            raise ExportError(self._too_old())

    def _too_old(self) -> str:
        return (
            f"export of {self.summary.export_time:%Y-%m-%d %H:%M:%S} UTC is older than the tombstone retention "
            f"({self.replicator.tombstone_retention}): it could bring back items deleted since; take a new export, "
            "or pass --force if nothing was deleted since"
        )

    def finish(self, deadline: float | None = None) -> int | None:
        """Once every data file is in: a full export deletes the rows it lacks; the export is marked finished.

        Returns the rows deleted, or None while files are missing. Safe to call any number of times,
        from any number of loaders: the deletes are version-guarded like any other.
        """

        def state(tries: int) -> tuple[int, bool]:
            with self.replicator.connection().cursor() as cursor:
                loaded = len(self._loaded(cursor))
                cursor.execute(
                    f"SELECT 1 FROM {EXPORTS_TABLE} WHERE export_arn = %s AND finished_at IS NOT NULL",
                    (self.summary.export_arn,),
                )
                return loaded, cursor.fetchone() is not None

        loaded, done = self._waiting(state, deadline)  # after a long load this connection may have died idle
        if loaded < self.data_files:
            return None
        if done:  # finished before: by another loader, or an earlier run
            return 0
        deleted = 0
        if not self.summary.incremental:
            for entity in self.entities:
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
        keeps its row (its line waits in the rejects, not absent). Items with an older reject still
        waiting get a tombstone at the export's version: replaying that reject must not bring back an
        item the export did not hold (for one it did hold, the tombstone is older than its row: harmless).
        """
        version = snapshot_version(self.summary.export_time)
        keys = [table.attributes[i] for i in table.key_positions]
        columns = ", ".join(quote_ident(a.column) for a in keys)
        rejects = quote_ident(REJECTS_TABLE)
        with self.replicator.connection().cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {quote_ident(table.sql_table)} "
                f"WHERE {stored_version(quote_ident(VERSION_COLUMN))} < %s",
                (version,),
            )
            stale = cursor.fetchall()
            cursor.execute(
                f"SELECT item_key, max({stored_version('version')}) FROM {rejects} "
                f"WHERE replayed_at IS NULL AND sql_table = %s AND item_key IS NOT NULL "
                f"AND {stored_version('version')} <= %s GROUP BY item_key",
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
                f"WHERE {stored_version('x.version')} < EXCLUDED.version",
                (table.sql_table, keys, version),
            )

    def _apply_deletes(self, changes: list[Change], deadline: float | None) -> int:
        batch = DecodedBatch(changes, changes, [], 0)

        def attempt(tries: int) -> int:
            with self.replicator.connection().cursor() as cursor:
                self.replicator.create_stages(cursor, [changes[0].table])
                with transaction(cursor):
                    self._lock(cursor)
                    counts, _ = self.replicator.apply_in_transaction(cursor, batch, [{} for _ in changes])
            return counts.deleted

        return self._waiting(attempt, deadline)


def _key_value(value: Any) -> Any:
    """A key column's value as the decode gives it, so its digest equals the tombstone's and the reject's."""
    if isinstance(value, Decimal):
        return canonical_number(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value
