"""One customer-managed KMS key for everything the stack stores at rest.

Tables, the cluster, its secret, the on-failure queue, the log groups and the functions' environment
are encrypted with it. CloudWatch Logs may use it only for this stack's log groups; named
administrators manage it; the account statement AWS requires keeps it from becoming unmanageable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.logs import stack_log_groups

# What AWS's console gives "key administrators": manage the key, never use it on data.
ADMINISTRATOR_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]


@dataclass
class EncryptionArgs:
    account_id: pulumi.Input[str]
    region: pulumi.Input[str]
    partition: pulumi.Input[str] = "aws"
    log_group_prefix: str = "ddbsync"  # log groups under stack_log_groups(prefix) may use the key
    administrators: tuple[str, ...] = ()  # IAM ARNs that manage (not use) the key
    protect: bool = False  # `pulumi destroy` refuses to schedule the key's deletion


class Encryption(pulumi.ComponentResource):
    """The stack's KMS key, rotated yearly, with a policy the log service can use."""

    def __init__(self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Encryption", name, None, opts)
        policy = pulumi.Output.all(args.account_id, args.region, args.partition).apply(
            lambda values: json.dumps(
                key_policy(
                    *values, log_groups=stack_log_groups(args.log_group_prefix), administrators=args.administrators
                )
            )
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            description="ddbsync: tables, database, secrets, queues, logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{name}",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.key_arn = self.key.arn
        self.register_outputs({"key_arn": self.key.arn})


def key_policy(
    account_id: str, region: str, partition: str, log_groups: list[str], administrators: tuple[str, ...] = ()
) -> dict:
    """The account's IAM policies decide who uses the key; named administrators manage it; Logs uses it for ours."""
    statements = [
        {
            # AWS's default statement: without it IAM policies could not grant the key at all, and a key
            # whose named principals are deleted becomes unmanageable. Only this account is trusted.
            "Sid": "AccountEnablesIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            # In a key policy, "*" means this key and nothing else.
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsUse",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            # AWS's example adds kms:Describe*, but a describe call carries no encryption context, so the
            # condition below could never let it through: it is left out.
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": [
                        f"arn:{partition}:logs:{region}:{account_id}:log-group:{pattern}" for pattern in log_groups
                    ]
                }
            },
        },
    ]
    if administrators:
        statements.insert(
            1,
            {
                "Sid": "KeyAdministrators",
                "Effect": "Allow",
                "Principal": {"AWS": list(administrators)},
                "Action": ADMINISTRATOR_ACTIONS,
                "Resource": "*",
            },
        )
    return {"Version": "2012-10-17", "Statement": statements}
