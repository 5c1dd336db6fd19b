"""What Lambda's event source mapping does for a DynamoDB stream, on one machine.

Reads the stream through the public DynamoDB Streams API (describe_stream, get_shard_iterator,
get_records), shard by shard, parents before children, from TRIM_HORIZON; gathers batches up to a
batch size or a batching window; calls the very same handler Lambda calls, with Lambda's event
shape and a context that tells the remaining time of a function with the configured timeout;
honours `ReportBatchItemFailures` (delivers again from the reported record); retries a failing batch
with backoff as often as the settings allow (by default without limit), and sets aside records older
than the maximum record age: an on-failure record (Lambda's `DDBStreamBatchInfo`) goes to the
on-failure destination and the shard moves on. The settings are `schema.delivery.StreamDelivery`,
the very ones the Pulumi program gives the event source mappings. Checkpoints live in memory.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ddbsync.streams.records import lambda_record
from schema.delivery import StreamDelivery

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
POLL_INTERVAL_SECONDS = 0.05
LONGEST_RETRY_PAUSE_SECONDS = 1.0  # the handler itself waits for the database; this only paces raising handlers


@dataclass
class InvocationContext:
    """The parts of Lambda's context object a handler reads: who it is and how much time it has left."""

    function_name: str
    timeout_seconds: float
    started: float = field(default_factory=time.monotonic)
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


@dataclass
class BatchReport:
    """One handler invocation, for metrics and lag: its records and when it returned."""

    records: list[dict[str, Any]]
    response: Any
    finished_at: float
    failed: bool


@dataclass
class _Shard:
    """A shard's position: its iterator, plus the records read and not yet done with (the checkpoint)."""

    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered_since: float | None = None
    attempts: int = 0  # failed calls of the batch at the head of the buffer
    retry_at: float = 0.0  # no new call before this (backoff after a failed one)
    closed: bool = False  # no more records will ever come (iterator ran out)


class StreamRunner:
    """Polls one DynamoDB stream and delivers its records to a handler, as an event source mapping."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        handler: Handler,
        settings: StreamDelivery = StreamDelivery(),
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        function_name: str = "ddbsync-local-replicator",
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.client = streams_client
        self.stream_arn = stream_arn
        self.handler = handler
        self.settings = settings
        self.function_name = function_name
        self.poll_interval_seconds = poll_interval_seconds
        self.on_failure = on_failure or (lambda info: logger.error("batch dropped after retries: %s", info))
        self.on_batch = on_batch or (lambda report: None)
        self.shards: dict[str, _Shard] = {}
        self.last_read = 0  # records the last poll found on the stream

    def _discover(self) -> None:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            if shard["ShardId"] not in self.shards:
                self.shards[shard["ShardId"]] = _Shard(shard["ShardId"], shard.get("ParentShardId"))

    def _ready(self, shard: _Shard) -> bool:
        """A child shard waits until its parent is read to the end, so one item's changes stay in order."""
        parent = self.shards.get(shard.parent_id) if shard.parent_id else None
        return not shard.closed and (parent is None or (parent.closed and not parent.buffer))

    def poll(self, now: float | None = None) -> int:
        """Read what is available on every ready shard and deliver due batches; returns records delivered."""
        self._discover()
        delivered, self.last_read = 0, 0
        for shard in list(self.shards.values()):
            if self._ready(shard) or (shard.closed and shard.buffer):
                self.last_read += self._read(shard)
                delivered += self._deliver_due(shard, now if now is not None else time.monotonic())
        return delivered

    def _read(self, shard: _Shard) -> int:
        if shard.closed or len(shard.buffer) >= self.settings.batch_size:
            return 0
        if shard.iterator is None:
            shard.iterator = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard.shard_id, ShardIteratorType=self.settings.starting_position
            )["ShardIterator"]
        response = self.client.get_records(ShardIterator=shard.iterator, Limit=self.settings.batch_size)
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.closed = True
        records = [lambda_record(r, self.stream_arn) for r in response["Records"]]
        if records and shard.buffered_since is None:
            shard.buffered_since = time.monotonic()
        shard.buffer.extend(records)
        return len(records)

    def _deliver_due(self, shard: _Shard, now: float) -> int:
        delivered = 0
        while shard.buffer and now >= shard.retry_at:
            delivered += self._set_aside_expired(shard)
            if not shard.buffer:
                break
            full = len(shard.buffer) >= self.settings.batch_size
            waited = (
                shard.buffered_since is not None
                and now - shard.buffered_since >= self.settings.maximum_batching_window_in_seconds
            )
            if not (full or waited or shard.closed):
                break
            batch = shard.buffer[: self.settings.batch_size]
            done = self._invoke(shard, batch)
            delivered += done
            if done < len(batch):
                break  # retried later from the reported record
            now = time.monotonic()
        if not shard.buffer:
            shard.buffered_since = None
        return delivered

    def _set_aside_expired(self, shard: _Shard) -> int:
        """Records past the maximum record age go to the on-failure destination, as Lambda does."""
        now = time.time()
        expired = 0
        for record in shard.buffer:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if created is None or not self.settings.too_old(now - created):
                break
            expired += 1
        if expired:
            self.on_failure(self._failure_record(shard, shard.buffer[:expired], "RecordAgeExceeded"))
        return self._advance(shard, expired)

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]]) -> int:
        """One handler call; returns how many records of the batch are done with (applied or set aside)."""
        context = InvocationContext(self.function_name, self.settings.function_timeout_seconds)
        try:
            response = self.handler({"Records": batch}, context)
            failures = (response or {}).get("batchItemFailures") or []
        except Exception:
            logger.exception("handler raised; the whole batch is retried")
            response, failures = None, [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]
        self.on_batch(BatchReport(batch, response, time.time(), bool(failures)))
        if not failures:
            return self._advance(shard, len(batch))
        failed = {f["itemIdentifier"] for f in failures}
        first = next((i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed), 0)
        self._advance(shard, first)
        shard.attempts += 1
        if self.settings.retries_exhausted(shard.attempts):
            dropped = batch[first:]
            self.on_failure(self._failure_record(shard, dropped, "RetryAttemptsExhausted"))
            return first + self._advance(shard, len(dropped))
        pause = min(LONGEST_RETRY_PAUSE_SECONDS, 0.05 * 2**shard.attempts)
        shard.retry_at = time.monotonic() + pause
        return first

    def _advance(self, shard: _Shard, count: int) -> int:
        if count:
            del shard.buffer[:count]
            shard.attempts = 0
            shard.retry_at = 0.0
            shard.buffered_since = time.monotonic() if shard.buffer else None
        return count

    def _failure_record(self, shard: _Shard, records: list[dict[str, Any]], condition: str) -> dict[str, Any]:
        """What Lambda sends to an on-failure destination: where the set-aside records are, not the records."""
        return {
            "requestContext": {"condition": condition, "approximateInvokeCount": shard.attempts},
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }

    def caught_up(self) -> bool:
        """Nothing buffered, and the last poll found nothing new on the stream."""
        return self.last_read == 0 and all(not s.buffer for s in self.shards.values())
