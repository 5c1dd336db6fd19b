"""What Lambda's event source mapping does for a DynamoDB stream, on one machine.

Reads the stream through the public DynamoDB Streams API (describe_stream, get_shard_iterator,
get_records), shard by shard, parents before children, from TRIM_HORIZON; gathers batches up to a
batch size or a batching window; calls the very same handler Lambda calls, with Lambda's event
shape; honours `ReportBatchItemFailures` (delivers again from the reported record); retries a
failing batch a bounded number of times, then hands an on-failure record (Lambda's
`DDBStreamBatchInfo`) to the on-failure destination and moves on. Checkpoints live in memory.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class RunnerSettings:
    """The event source mapping settings the runner honours (same names as Lambda's)."""

    batch_size: int = 100
    maximum_batching_window_in_seconds: float = 0.0  # Lambda's default for streams
    maximum_retry_attempts: int = 3
    poll_interval_seconds: float = 0.05


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
    attempts: int = 0
    closed: bool = False  # no more records will ever come (iterator ran out)


def lambda_json(value: Any) -> Any:
    """boto3's typed values with binary as base64 text, as Lambda's JSON carries it."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lambda_json(v) for v in value]
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from get_records in the shape Lambda delivers (epoch times, base64, eventSourceARN)."""
    dynamodb = {k: lambda_json(v) for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**{k: v for k, v in record.items() if k != "dynamodb"}, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


class StreamRunner:
    """Polls one DynamoDB stream and delivers its records to a handler, as an event source mapping."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        handler: Handler,
        settings: RunnerSettings = RunnerSettings(),
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        self.client = streams_client
        self.stream_arn = stream_arn
        self.handler = handler
        self.settings = settings
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
                StreamArn=self.stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
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
        while shard.buffer:
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
        if not shard.buffer:
            shard.buffered_since = None
        return delivered

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]]) -> int:
        """One handler call; returns how many records of the batch are done with (applied or given up)."""
        try:
            response = self.handler({"Records": batch}, None)
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
        if shard.attempts > self.settings.maximum_retry_attempts:
            dropped = batch[first:]
            self.on_failure(self._failure_record(shard, dropped))
            return first + self._advance(shard, len(dropped))
        return first

    def _advance(self, shard: _Shard, count: int) -> int:
        if count:
            del shard.buffer[:count]
            shard.attempts = 0
            shard.buffered_since = time.monotonic() if shard.buffer else None
        return count

    def _failure_record(self, shard: _Shard, records: list[dict[str, Any]]) -> dict[str, Any]:
        """What Lambda sends to an on-failure destination: where the dropped records are, not the records."""
        return {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": shard.attempts},
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
