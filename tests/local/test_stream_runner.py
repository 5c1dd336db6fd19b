"""The stream runner plays the event source mapping: order, batch size, retries from the reported record."""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest
from moto import mock_aws

from ddbsync.local.stack import aws_environment
from ddbsync.local.stream_runner import StreamRunner
from schema.delivery import StreamDelivery
from schema.dynamodb import table_definition
from schema.model import load_mappings


@pytest.fixture
def employees_stream(monkeypatch):
    """The Employees table, created from the mapping, with its stream, in in-process moto."""
    for name, value in aws_environment("").items():
        if name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        definition = table_definition(load_mappings().for_dynamodb_table("Employees"))
        dynamodb.create_table(**definition.create_table_request())
        arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
        yield dynamodb, boto3.client("dynamodbstreams"), arn


def put(dynamodb, key: int, **extra) -> None:
    dynamodb.put_item(TableName="Employees", Item={"Id": {"N": str(key)}, **extra})


class Recorder:
    """A handler that records what it is given and fails as told, like a Lambda function would."""

    def __init__(self, fail_at: dict[int, str] | None = None, raise_times: int = 0):
        self.calls: list[list[str]] = []
        self.fail_at = dict(fail_at or {})  # call number -> sequence number to report
        self.raise_times = raise_times

    def __call__(self, event, context):
        self.calls.append([r["dynamodb"]["Keys"]["Id"]["N"] for r in event["Records"]])
        json.dumps(event)  # Lambda's event is JSON: nothing else may be in it
        if self.raise_times:
            self.raise_times -= 1
            raise RuntimeError("handler failed")
        failed = self.fail_at.pop(len(self.calls), None)
        return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}


def settings(**changes) -> StreamDelivery:
    """The deployed delivery settings, without the batching window so tests need not wait for it."""
    return StreamDelivery(**{"maximum_batching_window_in_seconds": 0, **changes})


def drain(runner: StreamRunner, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.poll()
        if runner.caught_up():
            return
        time.sleep(0.01)
    raise AssertionError("runner did not catch up")


def test_batches_respect_batch_size_and_order(employees_stream):
    dynamodb, streams, arn = employees_stream
    for key in range(1, 8):
        put(dynamodb, key)
    handler = Recorder()
    drain(StreamRunner(streams, arn, handler, settings(batch_size=3)))
    assert handler.calls == [["1", "2", "3"], ["4", "5", "6"], ["7"]]


def test_records_have_lambdas_event_shape(employees_stream):
    dynamodb, streams, arn = employees_stream
    put(dynamodb, 1, blob={"B": b"\x00\xff"})
    events = []
    runner = StreamRunner(
        streams, arn, lambda event, context: events.append(event) or {"batchItemFailures": []}, settings()
    )
    drain(runner)
    (record,) = events[0]["Records"]
    assert record["eventSourceARN"] == arn and record["eventName"] == "INSERT"
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\xff").decode()}


def test_reported_failure_delivers_again_from_that_record(employees_stream):
    dynamodb, streams, arn = employees_stream
    for key in range(1, 6):
        put(dynamodb, key)
    runner = StreamRunner(streams, arn, lambda e, c: {"batchItemFailures": []}, settings(batch_size=10))
    runner._discover()
    records = streams.get_records(
        ShardIterator=streams.get_shard_iterator(
            StreamArn=arn, ShardId=next(iter(runner.shards)), ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )["Records"]
    third = records[2]["dynamodb"]["SequenceNumber"]
    handler = Recorder(fail_at={1: third})
    runner.handler = handler
    drain(runner)
    assert handler.calls == [["1", "2", "3", "4", "5"], ["3", "4", "5"]]


def test_bounded_retries_then_the_on_failure_destination(employees_stream):
    dynamodb, streams, arn = employees_stream
    for key in (1, 2):
        put(dynamodb, key)
    failures = []
    handler = Recorder(raise_times=10)
    runner = StreamRunner(
        streams, arn, handler, settings(batch_size=10, maximum_retry_attempts=2), on_failure=failures.append
    )
    drain(runner)
    assert len(handler.calls) == 3, "the first call and two retries"
    (info,) = failures
    assert info["DDBStreamBatchInfo"]["batchSize"] == 2 and info["DDBStreamBatchInfo"]["streamArn"] == arn
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    put(dynamodb, 3)
    handler.raise_times = 0
    drain(runner)
    assert handler.calls[-1] == ["3"], "the shard moves on after the dropped batch"


def test_child_shard_waits_for_its_parent():
    from ddbsync.local.stream_runner import _Shard

    runner = StreamRunner(None, "arn", lambda e, c: None)
    runner.shards = {"parent": _Shard("parent", None), "child": _Shard("child", "parent")}
    assert runner._ready(runner.shards["parent"]) and not runner._ready(runner.shards["child"])
    runner.shards["parent"].closed = True
    assert runner._ready(runner.shards["child"])


def test_by_default_a_failing_batch_is_retried_until_it_succeeds(employees_stream):
    dynamodb, streams, arn = employees_stream
    for key in (1, 2):
        put(dynamodb, key)
    failures = []
    handler = Recorder(raise_times=8)  # more than the bounded retries of old (3 locally, 5 on AWS)
    drain(StreamRunner(streams, arn, handler, settings(), on_failure=failures.append), timeout=60)
    assert handler.calls == [["1", "2"]] * 9
    assert failures == [], "nothing is set aside while retrying can still succeed"


def test_records_past_the_maximum_age_are_set_aside_not_delivered(employees_stream):
    dynamodb, streams, arn = employees_stream
    put(dynamodb, 1)
    time.sleep(1.2)
    put(dynamodb, 2)
    failures = []
    handler = Recorder()
    runner = StreamRunner(streams, arn, handler, settings(maximum_record_age_in_seconds=1), on_failure=failures.append)
    drain(runner)
    assert handler.calls == [["2"]]
    (info,) = failures
    assert info["requestContext"]["condition"] == "RecordAgeExceeded"
    assert info["DDBStreamBatchInfo"]["batchSize"] == 1


def test_the_handler_is_told_the_time_left_of_the_configured_timeout(employees_stream):
    dynamodb, streams, arn = employees_stream
    put(dynamodb, 1)
    remaining = []

    def handler(event, context):
        remaining.append(context.get_remaining_time_in_millis())
        return {"batchItemFailures": []}

    drain(StreamRunner(streams, arn, handler, settings(function_timeout_seconds=7)))
    assert 6000 < remaining[0] <= 7000
