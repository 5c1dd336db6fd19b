"""Loading an export end to end: from where the CLI runs, or fanned out to the backfill function on AWS.

The CLI and the backfill function share this: a file is loaded by `Backfill.load_file` (one
transaction, version-guarded, ledgered), then `Backfill.finish` deletes what a full export lacks once
the ledger holds every file. The queue's messages carry all a loader needs, so the function reads
only its one data file.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ddbsync.core.backfill import Backfill, FileResult
from ddbsync.core.batch import Replicator
from ddbsync.exports.manifest import DataFile, ExportError, ExportSummary, FileRefused, parse_files, parse_summary
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


class LoaderFailed(Exception):
    """A parallel loader stopped on an error that is not the file's fault; its message says which file and why."""


def load_export(
    replicator: Replicator,
    exports: S3Exports,
    summary: ExportSummary,
    data_files: list[DataFile],
    force: bool = False,
    on_items: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    workers: int = 1,
    fresh: Callable[[], tuple[Replicator, S3Exports]] | None = None,
) -> BackfillReport:
    """Load every data file not yet in, then finish the export (deletes of a full export included).

    A file that fails its checks is refused (nothing of it loads) and the others still load; the
    export is finished only once every file is in, so its deletes wait for a good copy of that file.
    With `workers` above 1 (and `fresh` making each worker its own replicator and reader), files load
    in that many processes at once: decoding is Python's work and takes a core each, while the
    merges take turns (each locks its tables for its moment).
    """
    started = time.perf_counter()
    backfill = Backfill(replicator, summary, len(data_files), force=force)
    loaded = backfill.begin()
    report = BackfillReport()
    todo = [f for f in data_files if f.key not in loaded]
    for data_file in data_files:
        if data_file.key in loaded:
            report.add(FileResult(data_file.key, skipped=True))
            if on_file is not None:
                on_file(report.results[-1])
    if workers > 1 and fresh is not None and len(todo) > 1:
        outcomes: Iterable[FileResult | str] = _in_parallel(fresh, summary, todo, force, workers, on_items)
    else:
        outcomes = (_load_one(backfill, exports, summary, data_file, on_items) for data_file in todo)
    for outcome in outcomes:
        if isinstance(outcome, str):
            report.refused.append(outcome)
            continue
        report.add(outcome)
        if on_file is not None:
            on_file(outcome)
    deleted = backfill.finish(time.monotonic() + FILE_WAIT_SECONDS)
    report.finished = deleted is not None
    report.deleted += deleted or 0
    report.seconds = time.perf_counter() - started
    return report


def _load_one(
    backfill: Backfill,
    exports: S3Exports,
    summary: ExportSummary,
    data_file: DataFile,
    on_items: Callable[[int], None] | None,
) -> FileResult | str:
    """One file's result, or why it was refused."""
    deadline = time.monotonic() + FILE_WAIT_SECONDS
    try:
        return backfill.load_file(data_file, exports.opener(summary, data_file), deadline, on_items)
    except FileRefused as refused:
        return str(refused)


def _in_parallel(
    fresh: Callable[[], tuple[Replicator, S3Exports]],
    summary: ExportSummary,
    todo: list[DataFile],
    force: bool,
    workers: int,
    on_items: Callable[[int], None] | None,
) -> Iterator[FileResult | str]:
    """Load `todo` in `workers` forked processes, each with its own connection; results as they come.

    Forked, so nothing is pickled but the files and the results; a worker leaves with `os._exit`
    (multiprocessing's way), so the connection it inherited from this process is never closed by it.
    """
    context = multiprocessing.get_context("fork")
    files, results = context.Queue(), context.Queue()
    for data_file in todo:
        files.put(data_file)
    total = len(todo)

    def work() -> None:
        data_file: DataFile | None = None
        try:
            replicator, exports = fresh()
            backfill = Backfill(replicator, summary, total, force=force)
            while True:
                try:
                    data_file = files.get_nowait()
                except queue.Empty:
                    break
                outcome = _load_one(backfill, exports, summary, data_file, lambda n: results.put(("items", n)))
                results.put(("file", outcome))
            replicator.close()
        except ExportError as error:  # the export's fault (too old, access denied): said as in one process
            results.put(("export", str(error)))
        except BaseException as error:  # the parent stops and says why; the ledger keeps what is in
            where = data_file.key if data_file is not None else "starting a loader"
            results.put(("failed", f"{where}: {type(error).__name__}: {error}"))

    processes = [context.Process(target=work, daemon=True) for _ in range(min(workers, total))]
    for process in processes:
        process.start()
    try:
        finished = 0
        while finished < total:
            try:
                kind, payload = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead or not any(p.is_alive() for p in processes):
                    if results.empty():
                        codes = ", ".join(str(p.exitcode) for p in dead) or "0"
                        raise LoaderFailed(f"a loader process ended without a word (exit status {codes})") from None
                continue
            if kind == "export":
                raise ExportError(payload)
            if kind == "items":
                if on_items is not None:
                    on_items(payload)
                continue
            if kind == "failed":
                raise LoaderFailed(payload)
            finished += 1
            yield payload
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


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
