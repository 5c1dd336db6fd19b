"""The scheduled re-drive: what the event source mapping set aside is applied again from the stream.

A function (`handlers.redrive.handler`) reads the on-failure queue and, for each set-aside range,
re-reads the stream and applies it as the replicator does, logged in as the replicator. EventBridge
Scheduler runs it on the stack's `redriveSchedule`. It reaches SQS and DynamoDB Streams through the
network's interface endpoints; Streams' endpoint has no private DNS name, so boto3 is pointed at it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pulumi
import pulumi_aws as aws

from infra.database import replicator_login
from infra.function import VpcFunction, VpcFunctionArgs
from infra.iam import assume_role_policy, statement

HANDLER = "handlers.redrive.handler"


@dataclass
class RedriveArgs:
    function: VpcFunctionArgs  # handler and environment are filled in here
    schedule_expression: str
    queue_arn: pulumi.Input[str]
    queue_url: pulumi.Input[str]
    stream_arns: list[pulumi.Input[str]]
    # boto3's endpoint variables for SQS and DynamoDB Streams where their endpoints have no private DNS.
    endpoint_environment: dict[str, pulumi.Input[str]]
    database_host: pulumi.Input[str]
    database_name: str
    db_connect_arn: pulumi.Input[str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Redrive(pulumi.ComponentResource):
    """The re-drive function and the schedule that runs it; each can touch only the queue, streams and key."""

    def __init__(self, name: str, args: RedriveArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Redrive", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        function_args = replace(
            args.function,
            handler=HANDLER,
            reserved_concurrency=1,  # one re-drive at a time: runs never overlap on a queue
            environment={
                **replicator_login(args.database_host, args.database_name),
                "DDBSYNC_ON_FAILURE_QUEUE_URL": args.queue_url,
                **args.endpoint_environment,
                "POWERTOOLS_SERVICE_NAME": "ddbsync-redrive",
                "POWERTOOLS_METRICS_NAMESPACE": "ddbsync",
            },
            statements=[
                statement(
                    ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
                    [args.queue_arn],
                    "OnFailureQueue",
                ),
                statement(["dynamodb:GetShardIterator", "dynamodb:GetRecords"], args.stream_arns, "ReadOwnStreams"),
                statement(["rds-db:connect"], [args.db_connect_arn], "ConnectAsReplicator"),
            ],
            key_services=("dynamodb", "sqs"),  # the encrypted queue and streams, as for the replicator
        )
        self.function = VpcFunction(name, function_args, opts=child)
        self.scheduler_role = aws.iam.Role(
            f"{name}-scheduler",
            # Only this account's schedules may act as this role (confused-deputy protection).
            assume_role_policy=pulumi.Output.from_input(args.function.account_id).apply(
                lambda account: assume_role_policy("scheduler.amazonaws.com", source_account=account)
            ),
            opts=child,
        )
        self.scheduler_policy = aws.iam.RolePolicy(
            f"{name}-scheduler",
            role=self.scheduler_role.id,
            policy=self.function.function.arn.apply(
                lambda arn: json.dumps(
                    {"Version": "2012-10-17", "Statement": [statement(["lambda:InvokeFunction"], [arn], "Redrive")]}
                )
            ),
            opts=child,
        )
        self.schedule = aws.scheduler.Schedule(
            name,
            schedule_expression=args.schedule_expression,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            # No customer key: the schedule carries no data, only "invoke this function".
            target=aws.scheduler.ScheduleTargetArgs(
                arn=self.function.function.arn,
                role_arn=self.scheduler_role.arn,
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(maximum_retry_attempts=0),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.scheduler_policy, *args.depends_on]),
        )
        self.register_outputs({"function_name": self.function.function.name})
