"""One stream batch, end to end: decode, coalesce, apply, commit, and the failure contract.

The contract is that of Lambda's `ReportBatchItemFailures` for streams:
- data that cannot be applied goes to the rejects table and the batch succeeds (no blocked shard);
- an error that may pass (lost connection, deadlock, serialization failure) rolls the whole batch
  back and reports its first record, so Lambda delivers the batch again from there;
- anything else (a missing table, a bug) raises, so the event source mapping's retries, bisection
  and on-failure destination take over. Nothing is ever committed half.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Sequence

import psycopg2
import psycopg2.extensions

from ddbsync.core.apply import Applier, ApplyCounts
from ddbsync.core.coalesce import last_change_per_item
from ddbsync.core.decode import Change, ConfigurationError, Reject, decode_record, sequence_number
from ddbsync.core.rejects import RejectedRecord, write_rejects
from ddbsync.core.tombstones import TOMBSTONE_RETENTION, purge_tombstones
from schema.model import Mappings, TableMapping

logger = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600

# Errors after which the same batch may well succeed: report it for retry.
RETRYABLE_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# Errors that mean some value does not fit the database: find the record and reject it.
DATA_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)

Connect = Callable[[], psycopg2.extensions.connection]

__all__ = ["BatchResult", "ConfigurationError", "Replicator"]


@dataclass
class BatchResult:
    """What one batch did, and which record Lambda must deliver again (if any)."""

    records: int
    counts: ApplyCounts = field(default_factory=ApplyCounts)
    rejected: int = 0
    retry_from: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def applied(self) -> int:
        return self.records - self.rejected if self.retry_from is None else 0

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The `ReportBatchItemFailures` answer for Lambda."""
        failures = [] if self.retry_from is None else [{"itemIdentifier": self.retry_from}]
        return {"batchItemFailures": failures}


def _by_table(changes: list[Change]) -> list[tuple[TableMapping, list[Change]]]:
    """Changes grouped per table, tables in name order so concurrent batches lock in the same order."""
    groups: dict[TableMapping, list[Change]] = defaultdict(list)
    for change in changes:
        groups[change.table].append(change)
    return sorted(groups.items(), key=lambda group: group[0].sql_table)


class Replicator:
    """Applies stream batches to one database through the mappings, reusing one connection."""

    def __init__(
        self, mappings: Mappings, connect: Connect, tombstone_retention: timedelta = TOMBSTONE_RETENTION
    ) -> None:
        self.mappings = mappings
        self._connect = connect
        self._connection: psycopg2.extensions.connection | None = None
        self._applier = Applier()
        self.tombstone_retention = tombstone_retention
        self._next_purge = 0.0  # the first successful batch purges; then once an hour

    def connection(self) -> psycopg2.extensions.connection:
        """The open connection, or a new one if there is none or the last one broke."""
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
            self._connection.autocommit = True  # transactions are explicit; see _write
            self._applier = Applier()
        return self._connection

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self._connection = None

    def process(self, records: Sequence[dict[str, Any]]) -> BatchResult:
        """Apply one batch of stream records in one transaction."""
        started = time.perf_counter()
        result = BatchResult(records=len(records))
        if not records:
            return result
        decoded = [decode_record(record, i, self.mappings) for i, record in enumerate(records)]
        changes = [d for d in decoded if isinstance(d, Change)]
        rejects = [
            RejectedRecord(records[d.position], d.reason, d.table_name) for d in decoded if isinstance(d, Reject)
        ]
        try:
            result.counts, late_rejects = self._write(
                self.connection(), last_change_per_item(changes), rejects, records
            )
            rejects += late_rejects
        except RETRYABLE_ERRORS as error:
            self._discard()
            result.retry_from = str(sequence_number(records[0]))
            result.error = f"{type(error).__name__}: {str(error).strip()}"
            logger.warning("batch rolled back, will be retried: %s", result.error)
        except BaseException:
            self._discard()
            raise
        result.rejected = len(rejects) if result.retry_from is None else 0
        if result.retry_from is None:
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
        except RETRYABLE_ERRORS as error:
            logger.warning("tombstone purge skipped: %s", str(error).strip())
            self._discard()

    def _write(
        self,
        connection: psycopg2.extensions.connection,
        changes: list[Change],
        rejects: list[RejectedRecord],
        records: Sequence[dict[str, Any]],
    ) -> tuple[ApplyCounts, list[RejectedRecord]]:
        """Write the batch atomically, in as few round trips as it allows.

        The connection is in autocommit mode: the common batch (one table, nothing rejected) is a
        single statement, which is a transaction by itself, so it costs one round trip. Anything
        more runs in an explicit transaction.
        """
        groups = _by_table(changes)
        with connection.cursor() as cursor:
            if not rejects and len(groups) <= 1:
                try:
                    return self._apply_groups(cursor, groups), []
                except DATA_ERRORS as error:
                    # The statement failed as a whole; find the record in a transaction below.
                    logger.warning("a value did not fit the database, isolating it: %s", str(error).strip())
            cursor.execute("BEGIN")
            try:
                counts, late_rejects = self._apply_isolating_bad_rows(cursor, groups, records)
                write_rejects(cursor, rejects + late_rejects)
                cursor.execute("COMMIT")
            except BaseException:
                if not connection.closed:
                    with suppress(psycopg2.Error):
                        cursor.execute("ROLLBACK")
                raise
            return counts, late_rejects

    def _apply_groups(self, cursor: Any, groups: list[tuple[TableMapping, list[Change]]]) -> ApplyCounts:
        """One statement per table, tables in lock order."""
        return sum((self._applier.apply(cursor, table, changes) for table, changes in groups), ApplyCounts())

    def _apply_isolating_bad_rows(
        self, cursor: Any, groups: list[tuple[TableMapping, list[Change]]], records: Sequence[dict[str, Any]]
    ) -> tuple[ApplyCounts, list[RejectedRecord]]:
        """Apply set-based; if the database refuses a value, redo change by change and reject that one."""
        cursor.execute("SAVEPOINT ddbsync_batch")
        try:
            return self._apply_groups(cursor, groups), []
        except DATA_ERRORS as error:
            logger.warning("a value did not fit the database, isolating it: %s", str(error).strip())
            cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_batch")
        counts, rejects = ApplyCounts(), []
        for change in (change for _, changes in groups for change in changes):
            cursor.execute("SAVEPOINT ddbsync_change")
            try:
                counts += self._applier.apply(cursor, change.table, [change])
            except DATA_ERRORS as error:
                cursor.execute("ROLLBACK TO SAVEPOINT ddbsync_change")
                reason = f"database refused the row: {str(error).strip().splitlines()[0]}"
                rejects.append(RejectedRecord(records[change.position], reason, change.table.dynamodb_table))
            cursor.execute("RELEASE SAVEPOINT ddbsync_change")
        return counts, rejects

    def _discard(self) -> None:
        """Drop a connection that may be broken (its transaction is already rolled back); open anew next time."""
        with suppress(psycopg2.Error):
            self.close()
