"""Streams -> Lambda -> Aurora: the replicator function, one event source mapping per table, the DLQ.

The mappings are created only after the migrations ran (`depends_on`) and take their delivery
settings from `schema.delivery` (the local stack runs with the same): TRIM_HORIZON, retries without
limit and no bisecting (bad data never fails a batch; what fails is the database being away, which
waiting mends), a maximum record age under the stream's 24 hours, an encrypted SQS on-failure queue
for what is set aside after that, and `ReportBatchItemFailures`, which the handler's contract relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pulumi
import pulumi_aws as aws

from infra.database import replicator_login
from infra.function import VpcFunction, VpcFunctionArgs
from infra.iam import statement
from schema.delivery import StreamDelivery
from schema.dynamodb import STREAM_VIEW_TYPE

HANDLER = "handlers.stream.handler"
FOURTEEN_DAYS = 14 * 24 * 3600


@dataclass
class ReplicationArgs:
    function: VpcFunctionArgs  # handler and environment are filled in here
    stream_arns: dict[str, pulumi.Input[str]]
    database_host: pulumi.Input[str]
    database_name: str
    db_connect_arn: pulumi.Input[str]
    delivery: StreamDelivery = field(default_factory=StreamDelivery)
    concurrency: int = 10  # replicator invocations at once: sized to the database's connections
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Replication(pulumi.ComponentResource):
    """The replicator and its triggers; the function can read only its streams, queue, key and DB user."""

    def __init__(self, name: str, args: ReplicationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Replication", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.queue = aws.sqs.Queue(
            f"{name}-on-failure",
            kms_master_key_id=args.function.kms_key_arn,
            message_retention_seconds=FOURTEEN_DAYS,
            opts=child,
        )
        stream_arns = list(args.stream_arns.values())
        function_args = replace(
            args.function,
            handler=HANDLER,
            timeout_seconds=args.delivery.function_timeout_seconds,
            reserved_concurrency=args.concurrency,
            environment={
                **replicator_login(args.database_host, args.database_name),
                "DDBSYNC_STREAM_VIEW_TYPE": STREAM_VIEW_TYPE,
                "POWERTOOLS_SERVICE_NAME": "ddbsync-stream",
                "POWERTOOLS_METRICS_NAMESPACE": "ddbsync",
            },
            statements=[
                statement(
                    ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                    stream_arns,
                    "ReadOwnStreams",
                ),
                # ListStreams has no resource-level permissions in DynamoDB: "*" is the only choice.
                statement(["dynamodb:ListStreams"], ["*"], "ListStreams"),
                statement(["sqs:SendMessage"], [self.queue.arn], "OnFailureQueue"),
                statement(["rds-db:connect"], [args.db_connect_arn], "ConnectAsReplicator"),
            ],
            key_services=("dynamodb", "sqs"),
        )
        self.function = VpcFunction(name, function_args, opts=child)
        delivery = args.delivery
        self.mappings = {
            table: aws.lambda_.EventSourceMapping(
                f"{name}-{table}",
                event_source_arn=stream_arn,
                function_name=self.function.function.arn,
                starting_position=delivery.starting_position,
                batch_size=delivery.batch_size,
                maximum_batching_window_in_seconds=delivery.maximum_batching_window_in_seconds,
                bisect_batch_on_function_error=delivery.bisect_batch_on_function_error,
                maximum_retry_attempts=delivery.maximum_retry_attempts,
                maximum_record_age_in_seconds=delivery.maximum_record_age_in_seconds,
                parallelization_factor=delivery.parallelization_factor,
                function_response_types=["ReportBatchItemFailures"],
                destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                    on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                        destination_arn=self.queue.arn
                    )
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function, *args.depends_on]),
            )
            for table, stream_arn in args.stream_arns.items()
        }
        self.register_outputs({"function_name": self.function.function.name, "queue_url": self.queue.url})
