"""Loading an export end to end: from where the CLI runs, or fanned out to the backfill function on AWS.

The CLI and the backfill function share this: a file is loaded by `Backfill.load_file` (one
transaction, version-guarded, ledgered), then `Backfill.finish` deletes what a full export lacks once
the ledger holds every file. The queue's messages carry all a loader needs, so the function reads
only its one data file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ddbsync.core.backfill import Backfill, FileResult
from ddbsync.core.batch import Replicator
from ddbsync.exports.manifest import DataFile, ExportSummary, FileRefused, parse_files, parse_summary
from ddbsync.exports.s3 import S3Exports

FILE_WAIT_SECONDS = 600.0  # how long the CLI waits for a database that went away, per file


@dataclass
class BackfillReport:
    """What a backfill did, summed over its files."""

    files: int = 0
    skipped: int = 0  # already in, by the ledger
    items: int = 0
    upserted: int = 0
    deleted: int = 0
    rejected: int = 0
    ignored: int = 0
    refused: list[str] = field(default_factory=list)  # files that failed their checks: why, naming each
    finished: bool = False
    seconds: float = 0.0
    results: list[FileResult] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        self.results.append(result)
        if result.skipped:
            self.skipped += 1
            return
        self.files += 1
        self.items += result.items
        self.upserted += result.counts.upserted
        self.deleted += result.counts.deleted
        self.rejected += result.rejected
        self.ignored += result.ignored


def load_export(
    replicator: Replicator,
    exports: S3Exports,
    summary: ExportSummary,
    data_files: list[DataFile],
    force: bool = False,
    on_items: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> BackfillReport:
    """Load every data file not yet in, then finish the export (deletes of a full export included).

    A file that fails its checks is refused (nothing of it loads) and the others still load; the
    export is finished only once every file is in, so its deletes wait for a good copy of that file.
    """
    started = time.perf_counter()
    backfill = Backfill(replicator, summary, len(data_files), force=force)
    loaded = backfill.begin()
    report = BackfillReport()
    for data_file in data_files:
        if data_file.key in loaded:
            result = FileResult(data_file.key, skipped=True)
        else:
            deadline = time.monotonic() + FILE_WAIT_SECONDS
            try:
                result = backfill.load_file(data_file, exports.opener(summary, data_file), deadline, on_items)
            except FileRefused as refused:
                report.refused.append(str(refused))
                continue
        report.add(result)
        if on_file is not None:
            on_file(result)
    deleted = backfill.finish(time.monotonic() + FILE_WAIT_SECONDS)
    report.finished = deleted is not None
    report.deleted += deleted or 0
    report.seconds = time.perf_counter() - started
    return report


def queue_messages(summary: ExportSummary, data_files: list[DataFile], force: bool = False) -> list[str]:
    """One message per data file for the backfill function's queue."""
    export = summary.document()
    return [
        json.dumps({"export": export, "dataFiles": len(data_files), "dataFile": f.entry(), "force": force})
        for f in data_files
    ]


def read_message(body: str) -> tuple[ExportSummary, int, DataFile, bool]:
    """A queue message back as what `Backfill` takes: the export, its file count, the file, --force."""
    message: dict[str, Any] = json.loads(body)
    summary = parse_summary(json.dumps(message["export"]), "backfill message")
    (data_file,) = parse_files(json.dumps(message["dataFile"]), "backfill message")
    return summary, int(message["dataFiles"]), data_file, bool(message.get("force", False))
