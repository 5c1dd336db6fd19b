"""VPC flow logs (a stack option): who talked to whom in the VPC, for incident review, kept like every other log."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import assume_role_policy, policy_document, statement
from infra.logs import log_group


@dataclass
class FlowLogsArgs:
    vpc_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    retention_days: int = 30


class FlowLogs(pulumi.ComponentResource):
    """All traffic of the VPC to the log group `/aws/vpc/<name>`, encrypted with the stack key."""

    def __init__(self, name: str, args: FlowLogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:FlowLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = log_group(f"{name}-logs", f"/aws/vpc/{name}", args.kms_key_arn, args.retention_days, child)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: assume_role_policy("vpc-flow-logs.amazonaws.com", source_account=account)
            ),
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=self.log_group.arn.apply(
                lambda arn: policy_document(
                    statement(
                        ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                        [f"{arn}:*"],
                        "WriteFlowLogs",
                    ),
                    # The service looks its group up before writing; DescribeLogGroups has no resource-level
                    # permissions in CloudWatch Logs: "*" is the only choice.
                    statement(["logs:DescribeLogGroups"], ["*"], "FindLogGroup"),
                )
            ),
            opts=child,
        )
        self.flow_log = aws.ec2.FlowLog(
            name,
            vpc_id=args.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.log_group.arn,
            iam_role_arn=self.role.arn,
            max_aggregation_interval=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]),
        )
        self.register_outputs({"log_group": self.log_group.name})
