"""A database outage loses nothing: the local stack's runner and the handler wait, and re-drive
brings back whatever was set aside. A real PostgreSQL is stopped (immediate shutdown, as a crash or
a failover looks to a client) while a writer streams inserts, updates and deletes through moto.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from typing import Iterator

import pytest

from ddbsync.local.demo import compare_with_dynamodb, in_step, write_while_replicating
from ddbsync.local.postgres import FAST_SETTINGS, PostgresServer
from ddbsync.local.stack import FAILURE_QUEUE, LocalStack, aws_environment, drain, handler_metrics_discarded
from ddbsync.local.stream_runner import BatchReport
from ddbsync.local.workload import mixed_writes
from schema.delivery import StreamDelivery
from tests.local.test_local_stack import ddbsync


def local_stack(delivery: StreamDelivery) -> Iterator[tuple[LocalStack, PostgresServer]]:
    """A local stack on a PostgreSQL server of the test's own, which the test may stop and start."""
    saved = dict(os.environ)
    sys.modules.pop("handlers.stream", None)  # a cold start: no connection left from another test
    # synchronous_commit stays on: without it a crash loses commits the client was told are done.
    server = PostgresServer(settings={**FAST_SETTINGS, "synchronous_commit": "on"}).start()
    stack = LocalStack(postgres=server, settings=delivery).start()
    try:
        with handler_metrics_discarded():
            yield stack, server
    finally:
        stack.stop()
        sys.modules.pop("handlers.stream", None)
        os.environ.clear()
        os.environ.update(saved)


def queued(stack: LocalStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def outages(server: PostgresServer, plan: list[tuple[float, float]], done: list[str]) -> threading.Thread:
    """Stop the server (immediate) after each pause for each length, from a thread."""

    def run() -> None:
        for pause, length in plan:
            time.sleep(pause)
            server.stop(keep_data=True, mode="immediate")
            time.sleep(length)
            server.start()
            done.append(f"{length:.0f} s")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def waiting_stack() -> Iterator[tuple[LocalStack, PostgresServer]]:
    # A short function timeout, so the 20 s outage outlasts several invocations, not just one.
    yield from local_stack(StreamDelivery(batch_size=50, function_timeout_seconds=4))


def test_outages_of_2_and_20_seconds_lose_nothing(waiting_stack):
    stack, server = waiting_stack
    failed_calls = []
    runners = stack.runners(lambda report: report.failed and failed_calls.append(report))
    rng = random.Random(9)
    done: list[str] = []
    chaos = outages(server, [(1.0, 2.0), (3.0, 20.0)], done)
    # 50 changes a second for 30 s: the writer goes on through both outages and after them.
    write_while_replicating(stack, runners, mixed_writes(1500, rng), 50)
    chaos.join()
    drain(runners)
    assert done == ["2 s", "20 s"]
    assert failed_calls, "the 20 s outage outlasted invocations, which handed their batches back"
    results = compare_with_dynamodb(stack)
    assert in_step(results), "every SQL table equals DynamoDB seen through the mapping"
    assert sum(r.actual for r in results) > 100
    assert queued(stack) == 0, "nothing was set aside"


@pytest.fixture
def impatient_stack() -> Iterator[tuple[LocalStack, PostgresServer]]:
    # Settings that give up quickly, to force the on-failure path that unlimited retries avoid.
    yield from local_stack(StreamDelivery(batch_size=20, maximum_retry_attempts=1, function_timeout_seconds=2))


def test_what_was_set_aside_comes_back_with_redrive(impatient_stack):
    stack, server = impatient_stack
    set_aside: list[BatchReport] = []
    runners = stack.runners(set_aside.append)
    server.stop(keep_data=True, mode="immediate")
    rng = random.Random(11)
    write_while_replicating(stack, runners, mixed_writes(120, rng), 200)
    assert queued(stack) > 0, "past its retries, each batch went to the on-failure queue"
    server.start()
    assert not in_step(compare_with_dynamodb(stack)), "the set-aside changes are missing from SQL"

    env = {**os.environ, **aws_environment(stack.endpoint), "DATABASE_URL": stack.database_url}
    result = ddbsync("redrive", "--queue", FAILURE_QUEUE, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("re-drove ")
    assert in_step(compare_with_dynamodb(stack)), "after re-drive the SQL tables equal DynamoDB"
    assert queued(stack) == 0


def test_a_range_the_stream_no_longer_holds_is_reported_with_its_fix(impatient_stack):
    stack, _ = impatient_stack
    dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
    dynamodb.create_table(
        TableName="Gone",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = dynamodb.describe_table(TableName="Gone")["Table"]["LatestStreamArn"]
    dynamodb.delete_table(TableName="Gone")
    shard = "shardId-00000001795000000000-0a1b2c3d"
    first, last = "100000000000000000001", "100000000000000000200"
    info = {"shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last, "streamArn": arn}
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"DDBStreamBatchInfo": info}))

    env = {**os.environ, **aws_environment(stack.endpoint), "DATABASE_URL": stack.database_url}
    result = ddbsync("redrive", "--queue", stack.queue_url, env=env)
    assert result.returncode == 1
    assert f"Gone: records {first}..{last} of shard {shard} are no longer in the stream" in result.stdout
    assert "ddbsync backfill --table Gone" in result.stdout
    assert queued(stack) == 1, "the message stays until the table is reloaded"


def test_redrive_without_a_queue_or_database_prints_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = ddbsync("redrive", env={**env, "DDBSYNC_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "name the on-failure queue with --queue" in result.stderr
