"""The stack's log groups: one way to declare them (the stack key, the stack retention) and where they may live."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def stack_log_groups(prefix: str) -> list[str]:
    """Name patterns of every log group the stack declares: its functions', its cluster's, its flow logs'."""
    return [f"/aws/lambda/{prefix}-*", f"/aws/rds/cluster/{prefix}-*", f"/aws/vpc/{prefix}-*"]


def log_group(
    resource_name: str,
    group_name: str,
    kms_key_arn: pulumi.Input[str],
    retention_days: int,
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.LogGroup:
    """A log group encrypted with the stack key and expiring: logs may hold item data and are never kept forever."""
    return aws.cloudwatch.LogGroup(
        resource_name, name=group_name, retention_in_days=retention_days, kms_key_id=kms_key_arn, opts=opts
    )
