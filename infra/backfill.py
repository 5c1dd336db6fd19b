"""Export -> SQS -> Lambda -> Aurora: the backfill fan-out, one invocation per export data file.

`ddbsync backfill ... --on-aws` sends one message per data file of an export (table, bucket, export
folder, export time and type, and the file's key, md5Checksum and itemCount); an SQS event source
mapping hands each to `handlers.backfill.handler` (batch size 1, `ReportBatchItemFailures`), which
loads the file in one transaction through the same decode and apply as the stream, logged in as
the replicator. The mapping's maximum concurrency (`backfillConcurrency`) caps the loads at once, so
they stay within the database's connections; files beyond it wait in the queue, none is lost.

The queue's visibility timeout is six times the function's (AWS's advice for Lambda event sources:
the extra time lets Lambda retry a throttled invocation before the message shows again); a file that fails
`backfillMaxReceiveCount` times goes to an encrypted dead-letter queue kept 14 days (longer than the
queue's 4: a message keeps its first enqueue time there) and raises an alarm; SQS's redrive moves it
back once the cause is mended. The function reads the export bucket through the VPC's S3 gateway
endpoint; SQS is polled by Lambda's service, outside the VPC, so no SQS endpoint is needed for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pulumi
import pulumi_aws as aws

from infra.alarms import metric_alarm
from infra.database import replicator_login
from infra.function import VpcFunction, VpcFunctionArgs
from infra.iam import statement

HANDLER = "handlers.backfill.handler"
TIMEOUT_SECONDS = 900  # Lambda's longest: a data file is loaded in one invocation, whatever its size
VISIBILITY_TIMEOUT_SECONDS = 6 * TIMEOUT_SECONDS
FOUR_DAYS = 4 * 24 * 3600
FOURTEEN_DAYS = 14 * 24 * 3600


@dataclass
class BackfillArgs:
    function: VpcFunctionArgs  # handler, timeout, memory and environment are filled in here
    bucket_arn: pulumi.Input[str]  # the export bucket: the function reads its objects, nothing else
    database_host: pulumi.Input[str]
    database_name: str
    db_connect_arn: pulumi.Input[str]
    concurrency: int = 4  # loads at once (2 to 1000): each holds one database connection
    memory_mb: int = 1024
    max_receive_count: int = 5
    alarm_topic_arn: str | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Backfill(pulumi.ComponentResource):
    """The file queue, its dead-letter queue, the loader function and the mapping between them."""

    def __init__(self, name: str, args: BackfillArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Backfill", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = args.function.kms_key_arn
        self.dead_letters = aws.sqs.Queue(
            f"{name}-dead-letters", kms_master_key_id=key, message_retention_seconds=FOURTEEN_DAYS, opts=child
        )
        self.queue = aws.sqs.Queue(
            f"{name}-files",
            kms_master_key_id=key,
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
            message_retention_seconds=FOUR_DAYS,
            redrive_policy=self.dead_letters.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count})
            ),
            opts=child,
        )
        function_args = replace(
            args.function,
            handler=HANDLER,
            timeout_seconds=TIMEOUT_SECONDS,
            memory_mb=args.memory_mb,
            # The mapping's maximum concurrency is the cap: reserved concurrency below it would only throttle.
            reserved_concurrency=None,
            environment={
                **replicator_login(args.database_host, args.database_name),
                "POWERTOOLS_SERVICE_NAME": "ddbsync-backfill",
                "POWERTOOLS_METRICS_NAMESPACE": "ddbsync",
            },
            statements=[
                # Each message names its data file: the loader reads that object and never lists the bucket.
                statement(["s3:GetObject"], [pulumi.Output.concat(args.bucket_arn, "/*")], "ReadExports"),
                statement(
                    ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                    [self.queue.arn],
                    "BackfillQueue",
                ),
                statement(["rds-db:connect"], [args.db_connect_arn], "ConnectAsReplicator"),
            ],
            key_services=("s3", "sqs"),  # the SSE-KMS export objects and the encrypted queue
        )
        self.function = VpcFunction(name, function_args, opts=child)
        self.mapping = aws.lambda_.EventSourceMapping(
            f"{name}-files",
            event_source_arn=self.queue.arn,
            function_name=self.function.function.arn,
            batch_size=1,  # one data file per invocation, one transaction per file
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(maximum_concurrency=args.concurrency),
            # Loads start only once the migrations created the tables they write.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function, *args.depends_on]),
        )
        self.dead_letter_alarm = metric_alarm(
            f"{name}-dead-letters",
            "Export data files failed to load backfillMaxReceiveCount times and wait in the dead-letter queue: "
            "mend the cause, then move them back to the backfill queue (SQS redrive)",
            args.alarm_topic_arn,
            child,
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self.dead_letters.name},
            statistic="Maximum",
        )
        self.register_outputs({"function_name": self.function.function.name, "queue_url": self.queue.url})
