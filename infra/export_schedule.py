"""Scheduled exports: EventBridge Scheduler runs a small function that exports the tables into the export bucket.

Scheduler's target input can carry only one value that changes, `<aws.scheduler.scheduled-time>`: it can
neither format a date prefix nor compute an incremental window. So each schedule (one per `exportSchedules`
entry, flexible window off, evaluated in its own time zone) invokes `handlers.scheduled_export.handler` with
its tables, type and first window, and the function does the rest (see its docstring).

The function runs outside the VPC: it needs no database, only DynamoDB's and S3's public endpoints, so no
endpoint or route is added for it. It may only export, describe and list the exports of the scheduled tables,
write under their prefixes of the export bucket, and use the stack key through S3 (the export's SSE-KMS
objects, written with its credentials) and Lambda (its environment). Its concurrency is 1: runs of all
schedules never overlap, so two runs never plan the same window.

Alarms: the function's own errors (an export it could not start), and per schedule `ExportsFailed` above 0
(an export that ended FAILED and was not made good since), to `alarmTopicArn` when set. `ExportsFailed` is
published once per run, so missing data keeps the alarm's state until the next run reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from ddbsync.exports.schedule import schedule_input
from infra.alarms import metric_alarm
from infra.function import RUNTIME, VpcFunctionArgs
from infra.iam import assume_role_policy, statement
from infra.logs import log_group
from infra.settings import ScheduledExport

HANDLER = "handlers.scheduled_export.handler"
MEMORY_MB = 256
# Lambda's longest: a run may wait for the scheduled time to become restorable (PITR trails by minutes).
TIMEOUT_SECONDS = 900
# Scheduler retries a failed delivery for an hour: a late run still exports as of its own scheduled time.
RETRY_ATTEMPTS, RETRY_MAX_AGE_SECONDS = 5, 3600


@dataclass
class ExportScheduleArgs:
    function: VpcFunctionArgs  # the archive, key, account, region and log settings; not its network
    schedules: Sequence[ScheduledExport]  # with their tables named (StackSettings.scheduled_exports)
    table_arns: Mapping[str, pulumi.Input[str]]  # every scheduled table's ARN
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    alarm_topic_arn: str | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class ExportSchedule(pulumi.ComponentResource):
    """The export function, its role, one schedule per configured entry, and the alarms on failed exports."""

    def __init__(self, name: str, args: ExportScheduleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:ExportSchedule", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        fn = args.function
        tables = sorted({table for schedule in args.schedules for table in schedule.tables})
        table_arns = [args.table_arns[table] for table in tables]
        self.log_group = log_group(f"{name}-logs", f"/aws/lambda/{name}", fn.kms_key_arn, fn.log_retention_days, child)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            opts=child,
        )
        self.policy_document = pulumi.Output.all(
            log=self.log_group.arn,
            key=fn.kms_key_arn,
            region=fn.region,
            bucket=args.bucket_arn,
            tables=pulumi.Output.all(*table_arns),
        ).apply(
            lambda v: json.dumps(function_policy(v["log"], v["key"], v["region"], v["bucket"], tables, v["tables"]))
        )
        self.policy = aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=self.policy_document, opts=child)
        self.function = aws.lambda_.Function(
            name,
            name=name,
            runtime=RUNTIME,
            architectures=[fn.architecture],
            handler=HANDLER,
            code=pulumi.FileArchive(str(fn.archive.path)),
            source_code_hash=fn.archive.sha256_base64,
            role=self.role.arn,
            memory_size=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            reserved_concurrent_executions=1,
            kms_key_arn=fn.kms_key_arn,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "DDBSYNC_EXPORT_BUCKET": args.bucket_name,
                    "DDBSYNC_EXPORT_KMS_KEY_ARN": fn.kms_key_arn,
                    # The metrics' `service` dimension: this stack's function, not another stack's.
                    "POWERTOOLS_SERVICE_NAME": name,
                    "POWERTOOLS_METRICS_NAMESPACE": "ddbsync",
                }
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=self.log_group.name),
            # No vpc_config: the function needs no database (see the module's docstring).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.log_group]),
        )
        self.scheduler_role = aws.iam.Role(
            f"{name}-scheduler",
            assume_role_policy=pulumi.Output.all(fn.account_id, fn.region, fn.partition).apply(
                lambda v: json.dumps(scheduler_trust_policy(*v))
            ),
            opts=child,
        )
        self.scheduler_policy = aws.iam.RolePolicy(
            f"{name}-scheduler",
            role=self.scheduler_role.id,
            policy=self.function.arn.apply(
                lambda arn: json.dumps(
                    {"Version": "2012-10-17", "Statement": [statement(["lambda:InvokeFunction"], [arn], "Export")]}
                )
            ),
            opts=child,
        )
        self.schedules: dict[str, aws.scheduler.Schedule] = {}
        self.failure_alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for entry in args.schedules:
            self.schedules[entry.name] = aws.scheduler.Schedule(
                f"{name}-{entry.name}",
                name=f"{name}-{entry.name}",
                description=f"ddbsync: {entry.type} export of {', '.join(entry.tables)}",
                schedule_expression=entry.schedule,
                schedule_expression_timezone=entry.timezone,
                flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
                # No customer key: the input names tables and a time, no data.
                target=aws.scheduler.ScheduleTargetArgs(
                    arn=self.function.arn,
                    role_arn=self.scheduler_role.arn,
                    input=json.dumps(schedule_input(entry.name, entry.tables, entry.export_type, entry.window_minutes)),
                    retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                        maximum_retry_attempts=RETRY_ATTEMPTS, maximum_event_age_in_seconds=RETRY_MAX_AGE_SECONDS
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.scheduler_policy, *args.depends_on]),
            )
            self.failure_alarms[entry.name] = metric_alarm(
                f"{name}-{entry.name}-failed",
                f"A scheduled export ({entry.name}: {entry.type}) ended FAILED and no later one completed: "
                "see the function's log line 'scheduled export failed' for DynamoDB's reason",
                args.alarm_topic_arn,
                child,
                namespace="ddbsync",
                metric_name="ExportsFailed",
                dimensions={"service": name, "schedule": entry.name},
                statistic="Maximum",
                period=300,
                treat_missing_data="ignore",  # one data point per run, hours apart: keep the state between runs
            )
        self.errors_alarm = metric_alarm(
            f"{name}-errors",
            "The scheduled export function failed (an export it could not start): see its log",
            args.alarm_topic_arn,
            child,
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": self.function.name},
            statistic="Sum",
            period=300,
        )
        self.register_outputs({"function_name": self.function.name})


def function_policy(
    log_group_arn: str, key_arn: str, region: str, bucket_arn: str, tables: Sequence[str], table_arns: Sequence[str]
) -> dict:
    """Export, describe and list only the scheduled tables' exports; write only under their prefixes."""
    key_use = statement(["kms:GenerateDataKey", "kms:Decrypt"], [key_arn], "StackKey")
    key_use["Condition"] = {
        "StringEquals": {"kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in ("lambda", "s3")]}
    }
    return {
        "Version": "2012-10-17",
        "Statement": [
            statement(["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn}:*"], "Logs"),
            # DescribeTable gives the table's ARN (ExportTableToPointInTime and ListExports take it), and
            # DescribeContinuousBackups its earliest restorable time (no window may start before it).
            statement(
                ["dynamodb:DescribeTable", "dynamodb:DescribeContinuousBackups", "dynamodb:ExportTableToPointInTime"],
                list(table_arns),
                "Export",
            ),
            statement(["dynamodb:DescribeExport"], [f"{arn}/export/*" for arn in table_arns], "DescribeExports"),
            # ListExports has no resource-level permissions in DynamoDB: "*" is the only choice (the function
            # asks only for its tables' exports, by TableArn, and can describe no others).
            statement(["dynamodb:ListExports"], ["*"], "ListExports"),
            statement(
                ["s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl"],
                [f"{bucket_arn}/{table}/*" for table in tables],
                "WriteExports",
            ),
            key_use,
        ],
    }


def scheduler_trust_policy(account: str, region: str, partition: str) -> dict:
    """Scheduler may act as the role only for this account's export schedules (confused-deputy protection)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    # Scheduler's confused-deputy guard names the schedule group: AWS refuses the role to a
                    # condition on one schedule or a name prefix (Scheduler guide, "confused deputy").
                    "StringEquals": {
                        "aws:SourceAccount": account,
                        "aws:SourceArn": f"arn:{partition}:scheduler:{region}:{account}:schedule-group/default",
                    },
                },
            }
        ],
    }
