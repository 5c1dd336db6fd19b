"""Restoring DynamoDB exports into DynamoDB: BatchWriteItem into an existing table, or ImportTable into a new one.

An existing table gets every item of a full export, then the changes of later incremental exports in
order (a line with a NewImage puts it, one without deletes its Keys). Each data file is read through the
one verified reader into a local spool first, so a file that fails its MD5 or line count writes nothing;
the next file is verified while this one is written. Writes go out 25 per BatchWriteItem from parallel
workers, each key always to the same worker, so two changes of one key keep their order; unprocessed
items and throttled requests are retried with exponential backoff and full jitter, and an optional rate
caps items per second over all workers. A ledger file records each data file once all its items are
written; a re-run skips recorded files. The exports of a run apply one after the other: every file of
one is written and recorded before the next export starts, so a ledger never holds a later change
without the earlier state under it.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import random
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ddbsync.exports.manifest import DataFile, ExportError, ExportSummary
from ddbsync.exports.s3 import S3Exports
from schema.dynamodb import TableDefinition

BATCH = 25  # BatchWriteItem's limit
RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
LEDGER_FORMAT = 1
Image = dict[str, Any]  # DynamoDB JSON as exports write it: numbers as strings, binary as base64


class RestoreError(ExportError):
    """A restore that cannot go on (a table that refuses the items, throttling that never ends): one line."""


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _said(what: str, error: ClientError | BotoCoreError) -> str:
    """One line for an AWS error, naming what was asked."""
    if isinstance(error, BotoCoreError):
        return f"{what}: {error} (check AWS credentials, region and AWS_ENDPOINT_URL)"
    return f"{what}: {_code(error)}: {error.response.get('Error', {}).get('Message', '')}"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; gives up after `give_up` attempts in a row that wrote nothing."""

    base: float = 0.05
    cap: float = 20.0
    give_up: int = 15

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 30)))


class RateLimit:
    """At most `rate` items per second over every worker, paced evenly (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, items: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + items / self.rate
        if start > now:
            time.sleep(start - now)


@dataclass(frozen=True)
class KeySchema:
    """The target table's key attributes and their types, from DescribeTable."""

    names: tuple[str, ...]
    types: tuple[str, ...]

    @classmethod
    def of_table(cls, dynamodb: Any, table: str) -> KeySchema:
        try:
            description = dynamodb.describe_table(TableName=table)["Table"]
        except (ClientError, BotoCoreError) as error:
            if isinstance(error, ClientError) and _code(error) == "ResourceNotFoundException":
                raise RestoreError(
                    f"no table {table}: create it, or give --new-table to import into a new one"
                ) from None
            raise RestoreError(_said(f"table {table}", error)) from None
        types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
        names = tuple(k["AttributeName"] for k in sorted(description["KeySchema"], key=lambda k: k["KeyType"]))
        return cls(names, tuple(types[name] for name in names))

    def key_of(self, *images: Image | None) -> Image | None:
        """The key in the first image that holds every key attribute with the table's type, else None."""
        for image in images:
            if image and all(list(image.get(n) or {}) == [t] for n, t in zip(self.names, self.types)):
                return {name: image[name] for name in self.names}
        return None

    def identity(self, key: Image) -> tuple[str, ...]:
        """One value per key: numbers normalised, as DynamoDB compares them (1 and 1.0 are one key)."""
        return tuple(_number(v["N"]) if t == "N" else next(iter(v.values())) for v, t in zip(key.values(), self.types))

    def describe(self) -> str:
        return ", ".join(f"{n} ({t})" for n, t in zip(self.names, self.types))


def _number(text: str) -> str:
    try:
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


def wire(value: Image) -> Image:
    """An attribute value as boto3's client sends it: exports give binary as base64, boto3 wants bytes."""
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "M":
        return {"M": {name: wire(v) for name, v in inner.items()}}
    if kind == "L":
        return {"L": [wire(v) for v in inner]}
    return value


def _key(line: Image, schema: KeySchema, where: str) -> tuple[Image | None, Image]:
    """The image a line puts (None for a delete) and the key it writes, or why the table cannot take it."""
    image = line.get("Item") or line.get("NewImage")
    key = schema.key_of(image) if image else schema.key_of(line.get("Keys"), line.get("OldImage"))
    if key is None:
        what = (
            "no Item, NewImage or Keys"
            if not (image or line.get("Keys"))
            else f"not the table's key {schema.describe()}"
        )
        raise RestoreError(f"{where}: a line holds {what}; restore into a table with the export's key schema")
    return image, key


def change(line: Image, schema: KeySchema, where: str) -> tuple[tuple[str, ...], Image]:
    """A line as (key identity, write request): a full export's Item or an incremental NewImage is put, a line
    without a NewImage deletes its key."""
    image, key = _key(line, schema, where)
    if image:
        return schema.identity(key), {"PutRequest": {"Item": {name: wire(v) for name, v in image.items()}}}
    return schema.identity(key), {"DeleteRequest": {"Key": {name: wire(v) for name, v in key.items()}}}


def check_order(summaries: list[ExportSummary]) -> None:
    """Exports of one table, in DynamoDB JSON, a full one (if any) first, then incrementals without a gap."""
    reached: datetime | None = None
    for number, summary in enumerate(summaries):
        where = f"export {summary.export_arn}"
        if summary.output_format != "DYNAMODB_JSON":
            raise ExportError(f"{where} is {summary.output_format}: restore reads DYNAMODB_JSON exports")
        if summary.table_name != summaries[0].table_name:
            raise ExportError(f"{where} is of table {summary.table_name}, the first of {summaries[0].table_name}")
        if not summary.incremental:
            if number:
                raise ExportError(f"{where} is a full export: give it first, then the incrementals after it")
            reached = summary.export_time
            continue
        start, end = summary.from_time or summary.export_time, summary.to_time or summary.export_time
        if reached is not None and start > reached:
            raise ExportError(f"{where} starts at {start.isoformat()}: changes since {reached.isoformat()} are missing")
        if reached is not None and end <= reached:
            raise ExportError(f"{where} ends at {end.isoformat()}, before the export given ahead of it: reorder them")
        reached = end


def export_id(summary: ExportSummary) -> str:
    return summary.folder.rstrip("/").rsplit("/", 1)[-1]


class Ledger:
    """A JSON file of the data files written into a table, by export; saved whole (atomically) per file."""

    def __init__(self, path: Path, table: str, identity: str | None = None) -> None:
        """`identity` tells one table of a name from another made later (its ARN and creation time)."""
        self.path = path
        self.data: dict[str, Any] = {"format": LEDGER_FORMAT, "table": table, "identity": identity, "exports": {}}
        self.restarted = False  # the ledger was of an earlier table of the same name: it starts afresh
        try:
            if not path.exists():
                return
            recorded = json.loads(path.read_text())
            name, exports = recorded["table"], recorded["exports"]
        except OSError as error:
            raise ExportError(f"ledger {path}: {error.strerror or error}: give another --ledger") from None
        except (ValueError, KeyError, TypeError):
            raise ExportError(f"{path} is not a restore ledger: move it away or give another --ledger") from None
        if name != table:
            raise ExportError(f"{path} records a restore into {name}, not {table}: give another --ledger")
        if identity is not None and recorded.get("identity") not in (None, identity):
            self.restarted = True  # dropped and made again since: nothing of the ledger is in it
            return
        self.data = {**recorded, "identity": identity or recorded.get("identity"), "exports": exports}

    def forget(self, summary: ExportSummary) -> None:
        """Write this export whole again (an earlier one in the plan is being written anew)."""
        if self.data["exports"].pop(summary.export_arn, None) is not None:
            self._save()

    def done(self, summary: ExportSummary, data_file: DataFile) -> bool:
        return data_file.key in self.data["exports"].get(summary.export_arn, {}).get("files", {})

    def _export(self, summary: ExportSummary) -> dict[str, Any]:
        return self.data["exports"].setdefault(
            summary.export_arn,
            {"folder": f"s3://{summary.bucket}/{summary.folder}", "type": summary.export_type, "files": {}},
        )

    def record(self, summary: ExportSummary, data_file: DataFile, puts: int, deletes: int) -> None:
        """A data file whose every item is written."""
        written = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entry = {"items": data_file.item_count, "puts": puts, "deletes": deletes, "at": written}
        self._export(summary)["files"][data_file.key] = entry
        self._save()

    def complete(self, summary: ExportSummary) -> None:
        """Every data file of the export is written: the next export may start."""
        export = self._export(summary)
        if not export.get("complete"):
            export["complete"] = True
            self._save()

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staged = self.path.with_name(self.path.name + ".tmp")
            staged.write_text(json.dumps(self.data, indent=1))
            os.replace(staged, self.path)
        except OSError as error:
            raise ExportError(f"ledger {self.path}: {error.strerror or error}: give another --ledger") from None

    def save(self) -> None:
        """Write the ledger as it is: before any item, so a path that cannot be written fails first."""
        self._save()


@dataclass
class FileResult:
    """One data file: written now, or already recorded in the ledger."""

    key: str
    items: int
    puts: int = 0
    deletes: int = 0
    skipped: bool = False


@dataclass
class RestoreReport:
    """What a restore did, summed over its files and requests."""

    files: int = 0
    skipped: int = 0
    items: int = 0
    puts: int = 0
    deletes: int = 0
    superseded: int = 0  # a later line of the same key in the same request won
    requests: int = 0
    throttled: int = 0  # requests refused whole and sent again
    unprocessed: int = 0  # items DynamoDB left unprocessed and that were sent again
    seconds: float = 0.0
    results: list[FileResult] = field(default_factory=list)


@dataclass
class _File:
    summary: ExportSummary
    data_file: DataFile
    result: FileResult
    outstanding: int = 0
    dispatched: bool = False


class _Writers:
    """Worker threads, one queue each; a file is recorded once every batch of it is written."""

    def __init__(self, dynamodb: Any, table: str, workers: int, limit: RateLimit, backoff: Backoff,
                 ledger: Ledger, report: RestoreReport, on_items: Callable[[int], None] | None,
                 on_file: Callable[[FileResult], None] | None) -> None:  # fmt: skip
        self.dynamodb, self.table, self.limit, self.backoff = dynamodb, table, limit, backoff
        self.ledger, self.report, self.on_items, self.on_file = ledger, report, on_items, on_file
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=4) for _ in range(workers)]
        self.buffers: list[dict[tuple[str, ...], Image]] = [{} for _ in range(workers)]
        self.lines = [0] * workers
        self.threads = [threading.Thread(target=self._work, args=(q,), daemon=True) for q in self.queues]
        for thread in self.threads:
            thread.start()

    def submit(self, file: _File, identity: tuple[str, ...], request: Image) -> None:
        worker = hash(identity) % len(self.queues)
        buffer = self.buffers[worker]
        if identity in buffer:  # BatchWriteItem refuses two writes of one key: the later line wins
            self.report.superseded += 1
        buffer[identity] = request
        self.lines[worker] += 1
        if len(buffer) == BATCH:
            self._send(file, worker)

    def end_file(self, file: _File) -> None:
        for worker, buffer in enumerate(self.buffers):
            if buffer:
                self._send(file, worker)
        with self.lock:
            file.dispatched = True
            self._maybe_record(file)

    def _send(self, file: _File, worker: int) -> None:
        batch, lines = list(self.buffers[worker].values()), self.lines[worker]
        self.buffers[worker], self.lines[worker] = {}, 0
        with self.lock:
            file.outstanding += lines
        while True:  # a worker that stopped still drains its queue, so this never waits for ever
            self.raise_error()
            try:
                self.queues[worker].put((file, batch, lines), timeout=0.5)
                return
            except queue.Full:
                continue

    def _maybe_record(self, file: _File) -> None:
        if file.dispatched and file.outstanding == 0:
            self.ledger.record(file.summary, file.data_file, file.result.puts, file.result.deletes)
            self.report.files += 1
            self.report.results.append(file.result)
            if self.on_file:
                self.on_file(file.result)

    def drain(self) -> None:
        """Wait until everything sent is written (or a worker failed, then raise its error)."""
        for q in self.queues:
            q.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.stop.set()
        for q in self.queues:
            q.put(None)
        for thread in self.threads:
            thread.join()

    def _work(self, batches: queue.Queue) -> None:
        while (task := batches.get()) is not None:
            try:
                if not self.stop.is_set():
                    self._write(*task)
            except BaseException as error:  # handed to the dispatcher, which raises it
                with self.lock:
                    self.error = self.error or error
                self.stop.set()
            finally:
                batches.task_done()
        batches.task_done()

    def _write(self, file: _File, batch: list[Image], lines: int) -> None:
        pending, attempt, idle = batch, 0, 0
        while pending:
            self.limit.acquire(len(pending))
            throttled = False
            try:
                response = self.dynamodb.batch_write_item(RequestItems={self.table: pending})
                left = response.get("UnprocessedItems", {}).get(self.table, [])
            except (ClientError, BotoCoreError) as error:
                if not isinstance(error, ClientError) or _code(error) not in RETRYABLE:
                    raise RestoreError(_said(f"BatchWriteItem into {self.table}", error)) from None
                left, throttled = pending, True
            written = len(pending) - len(left)
            with self.lock:
                self.report.requests += 1
                self.report.throttled += throttled
                self.report.unprocessed += 0 if throttled else len(left)
                if written and self.on_items:
                    self.on_items(written)
            if left:
                idle = 0 if written else idle + 1
                if idle >= self.backoff.give_up:
                    raise RestoreError(
                        f"{self.table} took nothing for {idle} attempts in a row (throttled): re-run to resume, "
                        "with a lower --max-rate or more capacity"
                    )
                attempt += 1
                if self.stop.wait(self.backoff.delay(attempt)):
                    return
            pending = left
        with self.lock:
            file.outstanding -= lines
            self._maybe_record(file)


def _spooled(
    exports: S3Exports, summary: ExportSummary, files: list[DataFile], schema: KeySchema, folder: str, stop: Any
) -> Iterator[tuple[DataFile, Path | None, BaseException | None]]:
    """Each file verified by the one reader and spooled to disk, its key checked; or the error that refused it."""
    for number, data_file in enumerate(files):
        if stop.is_set():
            return
        where = f"s3://{summary.bucket}/{data_file.key}"
        path = Path(folder) / f"{number}.jsonl"
        try:
            with open(path, "wb") as spool:
                for count, line in enumerate(exports.lines(summary, data_file), 1):
                    _key(line, schema, f"{where} line {count}")
                    spool.write(orjson.dumps(line) + b"\n")
                    if count % 4096 == 0 and stop.is_set():
                        return
        except BaseException as error:  # the dispatcher raises it after the files before it are written
            yield data_file, None, error
            return
        yield data_file, path, None


def _prefetch(source: Iterator[Any], stop: threading.Event) -> Iterator[Any]:
    """Run `source` one step ahead in a thread: the next file is verified while this one is written."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    end = object()

    def offer(step: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(step, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for step in source:
                if not offer(step):
                    return
        finally:
            offer(end)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while (step := ready.get()) is not end:
            yield step
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass


def restore(
    dynamodb: Any,
    exports: S3Exports,
    table: str,
    plan: list[tuple[ExportSummary, list[DataFile]]],
    ledger: Ledger,
    workers: int = 4,
    max_rate: float | None = None,
    backoff: Backoff = Backoff(),
    on_items: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> RestoreReport:
    """Write the exports of `plan`, in order, into `table`; files the ledger holds are skipped."""
    check_order([summary for summary, _ in plan])
    # From the first export not wholly written on, every export is written whole: a later one the
    # ledger holds from an earlier run would otherwise be skipped after an earlier one was written
    # again, and its changes lost under the earlier state.
    pending = [s for s, _ in plan if not ledger.data["exports"].get(s.export_arn, {}).get("complete")]
    if pending:
        first = [s.export_arn for s, _ in plan].index(pending[0].export_arn)
        for summary, _ in plan[first + 1 :]:
            ledger.forget(summary)
    schema = KeySchema.of_table(dynamodb, table)
    report, started = RestoreReport(), time.monotonic()
    writers = _Writers(dynamodb, table, workers, RateLimit(max_rate), backoff, ledger, report, on_items, on_file)
    try:
        for summary, data_files in plan:
            todo = [f for f in data_files if not ledger.done(summary, f)]
            for data_file in data_files:
                if ledger.done(summary, data_file):
                    result = FileResult(data_file.key, data_file.item_count, skipped=True)
                    report.skipped += 1
                    report.results.append(result)
                    if on_file:
                        on_file(result)
            stop = threading.Event()
            with (
                tempfile.TemporaryDirectory(prefix="ddbsync-restore-") as folder,
                closing(_prefetch(_spooled(exports, summary, todo, schema, folder, stop), stop)) as steps,
            ):
                for data_file, path, error in steps:
                    if error is not None:
                        writers.drain()  # the files before it are written and recorded
                        raise error
                    _dispatch(writers, summary, data_file, path, schema)
                writers.drain()
            ledger.complete(summary)
    finally:
        writers.close()
    report.items = sum(r.items for r in report.results if not r.skipped)
    report.puts = sum(r.puts for r in report.results if not r.skipped)
    report.deletes = sum(r.deletes for r in report.results if not r.skipped)
    report.seconds = time.monotonic() - started
    return report


def _dispatch(writers: _Writers, summary: ExportSummary, data_file: DataFile, path: Any, schema: KeySchema) -> None:
    file = _File(summary, data_file, FileResult(data_file.key, data_file.item_count))
    with open(path, "rb") as spool:
        for line in spool:
            identity, request = change(orjson.loads(line), schema, data_file.key)
            if "PutRequest" in request:
                file.result.puts += 1
            else:
                file.result.deletes += 1
            writers.submit(file, identity, request)
    os.unlink(path)
    writers.end_file(file)


# --- a new table: DynamoDB's ImportTable reads a full export's data folder itself -------------------------

IMPORT_POLL_SECONDS = (0.5, 30.0)  # DescribeImport: first wait, longest wait (doubling in between)


def import_request(
    summary: ExportSummary, data_files: list[DataFile], definition: TableDefinition, kms_key: str | None = None
) -> dict[str, Any]:
    """The ImportTable request that creates `definition`'s table from a full export's `data/` folder."""
    if summary.incremental:
        raise ExportError(
            f"export {summary.export_arn} is incremental: ImportTable reads only full exports; write it into "
            "an existing table with --table NAME (after the full export it follows)"
        )
    data = summary.folder + "data/"
    outside = [f.key for f in data_files if not f.key.startswith(data)]
    if outside:
        raise ExportError(f"s3://{summary.bucket}/{outside[0]} is outside {data}: ImportTable would not read it")
    table = definition.create_table_request()
    fields = ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "GlobalSecondaryIndexes")
    creation = {name: table[name] for name in fields if name in table}
    if kms_key:
        creation["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_key}
    return {
        "S3BucketSource": {"S3Bucket": summary.bucket, "S3KeyPrefix": data},
        "InputFormat": "DYNAMODB_JSON",
        "InputCompressionType": "GZIP",
        "TableCreationParameters": creation,
    }


def _exists(table: str) -> ExportError:
    return ExportError(f"table {table} exists (or an import into it runs): write into it with --table {table}")


def refuse_existing(dynamodb: Any, table: str) -> None:
    """Before anything is read: ImportTable creates its table, so one of that name must not exist."""
    try:
        dynamodb.describe_table(TableName=table)
    except (ClientError, BotoCoreError) as error:
        if isinstance(error, ClientError) and _code(error) == "ResourceNotFoundException":
            return
        raise ExportError(_said(f"table {table}", error)) from None
    raise _exists(table)


def start_import(dynamodb: Any, request: dict[str, Any]) -> str:
    """Start ImportTable; its ARN. A table that exists already, or a refused request, is one line."""
    table = request["TableCreationParameters"]["TableName"]
    try:
        return dynamodb.import_table(**request)["ImportTableDescription"]["ImportArn"]
    except (ClientError, BotoCoreError) as error:
        if isinstance(error, ClientError) and _code(error) in ("ResourceInUseException", "ImportConflictException"):
            raise _exists(table) from None
        raise ExportError(_said(f"ImportTable into {table}", error)) from None


def wait_for_import(
    dynamodb: Any,
    import_arn: str,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    poll: tuple[float, float] = IMPORT_POLL_SECONDS,
) -> dict[str, Any]:
    """Poll DescribeImport, backing off, until the import ends; its last description."""
    delay = poll[0]
    while True:
        try:
            description = dynamodb.describe_import(ImportArn=import_arn)["ImportTableDescription"]
        except (ClientError, BotoCoreError) as error:
            raise ExportError(_said(f"DescribeImport {import_arn}", error)) from None
        if on_poll:
            on_poll(description)
        if description["ImportStatus"] not in ("IN_PROGRESS", "CANCELLING"):
            return description
        time.sleep(delay)
        delay = min(poll[1], delay * 2)
