"""`ddbsync redrive`: apply again what the event source mapping set aside, from the stream itself."""

from __future__ import annotations

import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ddbsync.cli.output import CommandError, local_stack_state, operator_replicator


def queue_name_or_url(queue: str | None) -> str:
    """The on-failure queue as given, else the running local stack's."""
    if queue is not None:
        return queue
    state = local_stack_state()
    if state is None:
        raise CommandError("name the on-failure queue with --queue (the stack output on_failure_queue_url)")
    return state["on_failure_queue"]


def queue_url(sqs: Any, queue: str) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    try:
        return sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as error:
        raise CommandError(f"queue {queue!r}: {error.response['Error'].get('Message') or error}") from None


def redrive_command(queue: str | None, batch_size: int) -> int:
    """Re-drive every set-aside range; exit 0 only when the queue was emptied."""
    from ddbsync.streams.redrive import redrive

    queue = queue_name_or_url(queue)
    replicator = operator_replicator()
    try:
        sqs, streams = boto3.client("sqs"), boto3.client("dynamodbstreams")
        url = queue_url(sqs, queue)
        report = redrive(
            sqs, streams, url, lambda records: replicator.process(records, time.monotonic() + 60), batch_size
        )
    except BotoCoreError as error:  # no region, no credentials, no endpoint: the AWS setup to fix
        raise CommandError(str(error)) from None
    finally:
        replicator.close()
    print(f"re-drove {report.ranges} ranges: {report.records} records applied, {report.rejected} of them rejected")
    for line in report.gone:
        print(f"  not re-driven: {line}")
    for line in report.incomplete:
        print(f"  not re-driven yet: {line}")
    if report.unreadable:
        print(f"  {report.unreadable} messages are not stream on-failure records; left in the queue")
    if report.waiting:
        print(f"  stopped: the database is away ({report.waiting}); run again once it is back")
    return 0 if report.complete else 1
