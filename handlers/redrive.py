"""The re-drive Lambda: on a schedule, apply again what the event source mapping set aside.

Environment: the replicator's database login (see `handlers.stream`), `DDBSYNC_ON_FAILURE_QUEUE_URL`,
and `AWS_ENDPOINT_URL_DYNAMODBSTREAMS` (the stream endpoint inside the VPC: DynamoDB Streams'
interface endpoint has no private DNS name, so boto3 is pointed at it). A range still failing waits
for the next run; a range the stream no longer holds stays in the queue and is logged with its fix.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any, Sequence

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ddbsync.core.batch import BatchResult
from ddbsync.streams.redrive import redrive
from handlers.runtime import invocation_deadline, replicator_from_environment
from schema.model import load_mappings

logger = Logger(service="ddbsync-redrive")
metrics = Metrics(namespace="ddbsync", service="ddbsync-redrive")

QUEUE_URL = os.environ.get("DDBSYNC_ON_FAILURE_QUEUE_URL", "")
replicator = replicator_from_environment(load_mappings())
sqs, streams = boto3.client("sqs"), boto3.client("dynamodbstreams")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Re-drive the whole on-failure queue, waiting for the database within this invocation."""
    deadline = invocation_deadline(context)

    def apply(records: Sequence[dict[str, Any]]) -> BatchResult:
        return replicator.process(records, deadline)

    report = redrive(sqs, streams, QUEUE_URL, apply)
    metrics.add_metric(name="RangesRedriven", unit=MetricUnit.Count, value=report.ranges)
    metrics.add_metric(name="RangesGone", unit=MetricUnit.Count, value=len(report.gone))
    (logger.info if report.complete else logger.warning)("re-drive done", **asdict(report))
    return asdict(report)
