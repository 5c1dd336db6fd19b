"""CloudWatch alarms on what means replication is falling behind or losing records."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


def metric_alarm(
    name: str, description: str, topic_arn: pulumi.Input[str] | None, opts: pulumi.ResourceOptions, **metric
) -> aws.cloudwatch.MetricAlarm:
    """An alarm when a metric rises above zero (or `threshold`), telling `topic_arn` when it fires and clears.

    One shape for every alarm of the stack: one period of a minute unless `period` says otherwise, and
    no data counts as fine unless `treat_missing_data` says otherwise.
    """
    actions = [topic_arn] if topic_arn else []
    settings = {
        "comparison_operator": "GreaterThanThreshold",
        "threshold": 0,
        "evaluation_periods": 1,
        "period": 60,
        "treat_missing_data": "notBreaching",
        **metric,
    }
    return aws.cloudwatch.MetricAlarm(
        name, alarm_description=description, alarm_actions=actions, ok_actions=actions, opts=opts, **settings
    )


@dataclass
class AlarmsArgs:
    function_name: pulumi.Input[str]
    queue_name: pulumi.Input[str]
    iterator_age_ms: int = 60_000
    topic_arn: str | None = None


class Alarms(pulumi.ComponentResource):
    """Iterator age (lag behind the stream), function errors, and records in the on-failure queue."""

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Alarms", name, None, opts)

        def alarm(suffix: str, description: str, **metric) -> aws.cloudwatch.MetricAlarm:
            return metric_alarm(
                f"{name}-{suffix}", description, args.topic_arn, pulumi.ResourceOptions(parent=self), **metric
            )

        function = {"FunctionName": args.function_name}
        self.iterator_age = alarm(
            "iterator-age",
            "Replication is behind the DynamoDB stream (the database may be away: batches wait, nothing is "
            "skipped); records are set aside after 20 h and expire from the stream after 24 h",
            namespace="AWS/Lambda",
            metric_name="IteratorAge",
            dimensions=function,
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=args.iterator_age_ms,
        )
        self.errors = alarm(
            "errors",
            "The replicator raised (a missing table, a bug): the batch is retried until it is set aside",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions=function,
            statistic="Sum",
        )
        self.dropped = alarm(
            "on-failure-queue",
            "Stream records were set aside: the scheduled re-drive applies them, or run `ddbsync redrive`",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": args.queue_name},
            statistic="Maximum",
        )
        self.register_outputs({})
