"""One stream batch, end to end: decode, coalesce, apply, commit, and the failure contract.

The contract is that of Lambda's `ReportBatchItemFailures` for streams:
- data that cannot be applied goes to the rejects table and the batch succeeds: bad data never
  blocks a shard;
- an error that may pass (the database away, a lost connection, a deadlock; see `errors.py`) rolls
  the batch back and waits: the batch is tried again, with backoff, until the invocation's deadline;
  then its first record is reported, so Lambda delivers the batch again from there. An outage never
  skips a batch;
- anything else (a missing table, a bug) raises, for the event source mapping's retries and its
  on-failure destination. Nothing is ever committed half.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from collections import defaultdict
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

import psycopg2
import psycopg2.extensions

from ddbsync.core.apply import Applier, ApplyCounts, quote_ident
from ddbsync.core.coalesce import last_change_per_item
from ddbsync.core.connection import transaction
from ddbsync.core.copy import COPY_THRESHOLD
from ddbsync.core.decode import Change, ConfigurationError, Ignored, Reject, decode_record, sequence_number
from ddbsync.core.errors import ErrorKind, describe, error_kind
from ddbsync.core.rejects import RejectedRecord, write_rejects
from ddbsync.core.tombstones import TOMBSTONE_RETENTION, purge_tombstones
from schema.model import Mappings, TableMapping

logger = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600
FIRST_PAUSE_SECONDS = 0.2  # backoff while the database is away: doubling from here ...
LONGEST_PAUSE_SECONDS = 5.0  # ... up to here, so a database that is back is noticed within seconds

Connect = Callable[[], psycopg2.extensions.connection]

__all__ = ["BatchResult", "ConfigurationError", "Replicator"]


@dataclass
class BatchResult:
    """What one batch did, and which record Lambda must deliver again (if any)."""

    records: int
    counts: ApplyCounts = field(default_factory=ApplyCounts)
    rejected: int = 0
    ignored: int = 0  # records of items no entity matches, where the mapping says to ignore them
    retry_from: str | None = None
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 0  # tries of the batch's write; more than one means it waited for the database
    rejected_positions: tuple[int, ...] = ()  # which records of the batch went to the rejects table

    @property
    def applied(self) -> int:
        return self.records - self.rejected - self.ignored if self.retry_from is None else 0

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The `ReportBatchItemFailures` answer for Lambda."""
        failures = [] if self.retry_from is None else [{"itemIdentifier": self.retry_from}]
        return {"batchItemFailures": failures}


class Outage:
    """How long the database has been away, so it is logged once when it goes and once when it is back."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            logger.warning("database unavailable, waiting for it (nothing is skipped): %s", describe(error))

    def recovered(self) -> None:
        if self.since is not None:
            logger.warning("database back after %.1f s of waiting", time.monotonic() - self.since)
            self.since = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is decoded and written.

    A large batch allocates tens of thousands of small acyclic objects, each allocation counting towards
    a collection that then walks them all (measured: 12-14% of a 10,000-record batch). Nothing here makes
    reference cycles, so deferring the collector to between batches frees nothing later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def pause_before(attempt: int) -> float:
    """Exponential backoff with jitter, so many shards waiting on one database do not return in step."""
    return min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2**attempt) * random.uniform(0.5, 1.0)


def _newest_first(change: Change, history: list[Change]) -> list[Change]:
    """The item's changes in the batch from `change` back, one per version."""
    same = {c.version: c for c in history if c.table is change.table and c.item_key == change.item_key}
    return [same[v] for v in sorted(same, reverse=True) if v <= change.version]


def _refused(record: dict[str, Any], reason: str, change: Change) -> RejectedRecord:
    table = change.table
    return RejectedRecord(
        record, reason, table.dynamodb_table, table.sql_table, change.item_key, change.version, change.position
    )


def by_table(changes: list[Change]) -> list[tuple[TableMapping, list[Change]]]:
    """Changes grouped per table, tables in name order so concurrent batches lock in the same order."""
    groups: dict[TableMapping, list[Change]] = defaultdict(list)
    for change in changes:
        groups[change.table].append(change)
    return sorted(groups.items(), key=lambda group: group[0].sql_table)


@dataclass
class DecodedBatch:
    """A batch's records decoded: every change (history), the last per item, the rejects, the ignored."""

    history: list[Change]
    changes: list[Change]
    rejects: list[RejectedRecord]
    ignored: int


def decode_batch(records: Sequence[dict[str, Any]], mappings: Mappings) -> DecodedBatch:
    """Decode each record once; keep the last change per item for the apply and the rest for fallbacks."""
    decoded = [decode_record(record, i, mappings) for i, record in enumerate(records)]
    history = [change for d in decoded for change in (d if isinstance(d, list) else d.changes)]
    rejects = [
        RejectedRecord(records[d.position], d.reason, d.table_name, position=d.position)
        for d in decoded
        if isinstance(d, Reject)
    ]
    ignored = sum(1 for d in decoded if isinstance(d, Ignored))
    return DecodedBatch(history, last_change_per_item(history), rejects, ignored)


class Replicator:
    """Applies stream batches to one database through the mappings, reusing one connection."""

    def __init__(
        self,
        mappings: Mappings,
        connect: Connect,
        tombstone_retention: timedelta = TOMBSTONE_RETENTION,
        copy_threshold: int = COPY_THRESHOLD,
    ) -> None:
        self.mappings = mappings
        self._connect = connect
        self._connection: psycopg2.extensions.connection | None = None
        self.copy_threshold = copy_threshold
        self._applier = Applier(copy_threshold)
        self.tombstone_retention = tombstone_retention
        self._next_purge = 0.0  # the first successful batch purges; then once an hour
        self.outage = Outage()

    def connection(self) -> psycopg2.extensions.connection:
        """The open connection, or a new one if there is none or the last one broke."""
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
            self._connection.autocommit = True  # transactions are explicit; see _write
            with self._connection.cursor() as cursor:
                # Appliers racing over one item (stream, replay, re-drive, backfill) must end as some
                # order of them would: SSI aborts the loser (40001), which waits and tries again.
                cursor.execute("SET default_transaction_isolation = 'serializable'")
            self._applier = Applier(self.copy_threshold)
        return self._connection

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self._connection = None

    def process(self, records: Sequence[dict[str, Any]], deadline: float | None = None) -> BatchResult:
        """Apply one batch of stream records in one transaction, waiting for the database until `deadline`.

        `deadline` is a `time.monotonic()` value: the invocation's end less a margin. Without one the
        batch is tried once, and a database that is away hands it straight back for retry.
        """
        started = time.perf_counter()
        result = BatchResult(records=len(records))
        if not records:
            return result
        with _collector_paused():
            batch = decode_batch(records, self.mappings)
        result.ignored = batch.ignored
        rejects = batch.rejects
        while True:
            result.attempts += 1
            try:
                with _collector_paused():
                    result.counts, late_rejects = self._write(self.connection(), batch, records)
                break
            except BaseException as error:
                self.discard()
                if error_kind(error) is not ErrorKind.WAIT:
                    raise
                self.outage.failed(error)
                pause = pause_before(result.attempts - 1)
                if deadline is None or time.monotonic() + pause >= deadline:
                    result.retry_from = str(sequence_number(records[0]))
                    result.error = describe(error)
                    result.seconds = time.perf_counter() - started
                    return result
                time.sleep(pause)
        self.outage.recovered()
        result.rejected = len(rejects) + len(late_rejects)
        result.rejected_positions = tuple(
            sorted({r.position for r in rejects + late_rejects if r.position is not None})
        )
        self._purge_tombstones_when_due()
        result.seconds = time.perf_counter() - started
        return result

    def _purge_tombstones_when_due(self) -> None:
        """Expired tombstones go once an hour; a failure here never fails the batch already committed."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        try:
            with self.connection().cursor() as cursor:
                purged = purge_tombstones(cursor, self.tombstone_retention)
            if purged:
                logger.info("purged %d expired tombstones", purged)
        except psycopg2.Error as error:
            # The batch is committed: failing it now would only deliver it again. Say why and go on.
            log = logger.warning if error_kind(error) is ErrorKind.WAIT else logger.error
            log("tombstone purge skipped: %s", describe(error))
            self.discard()

    def _write(
        self, connection: psycopg2.extensions.connection, batch: DecodedBatch, records: Sequence[dict[str, Any]]
    ) -> tuple[ApplyCounts, list[RejectedRecord]]:
        """Write the batch atomically, in as few round trips as it allows.

        The connection is in autocommit mode: a batch with nothing rejected is a single statement
        (whatever tables it touches), which is a transaction by itself, so it costs one round trip.
        Rejects, a value the database refuses, or a batch large enough to go by COPY take an explicit
        transaction.
        """
        groups = by_table(batch.changes)
        with connection.cursor() as cursor:
            copy = self._applier.uses_copy(groups)
            if copy:
                self.create_stages(cursor, [table for table, _ in groups])
            if not batch.rejects and not copy:
                try:
                    return self._apply_groups(cursor, groups), []
                except psycopg2.Error as error:
                    if error_kind(error) is not ErrorKind.DATA:
                        raise
                    # The statement failed as a whole; find the record in a transaction below.
                    logger.warning("a value did not fit the database, isolating it: %s", describe(error))
            with transaction(cursor):
                # The tables first, before any statement fixes the transaction's snapshot: a batch that
                # waits behind a backfill's merge then sees the merge, instead of failing on it (40001).
                tables = ", ".join(quote_ident(table.sql_table) for table, _ in groups)
                if tables:
                    cursor.execute(f"LOCK TABLE {tables} IN ROW EXCLUSIVE MODE")
                return self.apply_in_transaction(cursor, batch, records)

    @property
    def applier(self) -> Applier:
        """The statements and stages of the current connection (a new connection gets a new one)."""
        self.connection()
        return self._applier

    def create_stages(self, cursor: Any, tables: Sequence[TableMapping]) -> None:
        """The COPY transport's stages for `tables`; outside a transaction (see `Applier.create_stages`)."""
        self._applier.create_stages(cursor, tables)

    def apply_in_transaction(
        self, cursor: Any, batch: DecodedBatch, records: Sequence[dict[str, Any]]
    ) -> tuple[ApplyCounts, list[RejectedRecord]]:
        """Apply a decoded batch and store its rejects inside the caller's transaction (and stages)."""
        groups = by_table(batch.changes)
        counts, late_rejects = self._apply_isolating_bad_rows(cursor, groups, batch.history, records)
        write_rejects(cursor, batch.rejects + late_rejects, self.mappings)
        return counts, late_rejects

    def _apply_groups(self, cursor: Any, groups: list[tuple[TableMapping, list[Change]]]) -> ApplyCounts:
        """One statement for the batch's tables (in name order, so the prepared statements repeat)."""
        return self._applier.apply_tables(cursor, groups)

    def _apply_isolating_bad_rows(
        self,
        cursor: Any,
        groups: list[tuple[TableMapping, list[Change]]],
        history: list[Change],
        records: Sequence[dict[str, Any]],
    ) -> tuple[ApplyCounts, list[RejectedRecord]]:
        """Apply set-based; if the database refuses a value, redo item by item and reject what it refuses.

        An item whose last change is refused falls back to its earlier changes in the batch, newest
        first, as delivering them one batch each would: a REMOVE followed by a refused INSERT still
        deletes the row.
        """
        cursor.execute("SAVEPOINT ddbsync_batch")
        try:
            return self._apply_groups(cursor, groups), []
        except psycopg2.Error as error:
            if error_kind(error) is not ErrorKind.DATA:
                raise
            logger.warning("a value did not fit the database, isolating it: %s", describe(error))
            cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_batch")
        counts, rejects = ApplyCounts(), []
        for change in (change for _, changes in groups for change in changes):
            for candidate in _newest_first(change, history):
                cursor.execute("SAVEPOINT ddbsync_change")
                try:
                    counts += self._applier.apply(cursor, candidate.table, [candidate])
                except psycopg2.Error as error:
                    if error_kind(error) is not ErrorKind.DATA:
                        raise
                    cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_change")
                    reason = f"database refused the row: {describe(error)}"
                    rejects.append(_refused(records[candidate.position], reason, candidate))
                    continue
                cursor.execute("RELEASE SAVEPOINT ddbsync_change")
                break
        return counts, rejects

    def discard(self) -> None:
        """Drop a connection that may be broken (its transaction is already rolled back); open anew next time."""
        with suppress(psycopg2.Error):
            self.close()
