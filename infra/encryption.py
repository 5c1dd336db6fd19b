"""One customer-managed KMS key for everything the stack stores at rest.

Tables, the cluster, its secret, the on-failure queue, the log groups and the functions' environment
are encrypted with it. CloudWatch Logs may use it only for this stack's log groups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class EncryptionArgs:
    account_id: pulumi.Input[str]
    region: pulumi.Input[str]
    partition: pulumi.Input[str] = "aws"


class Encryption(pulumi.ComponentResource):
    """The stack's KMS key, rotated yearly, with a policy the log service can use."""

    def __init__(self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Encryption", name, None, opts)
        policy = pulumi.Output.all(args.account_id, args.region, args.partition).apply(
            lambda values: json.dumps(key_policy(*values))
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            description="ddbsync: tables, database, secrets, queues, logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{name}",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.key_arn = self.key.arn
        self.register_outputs({"key_arn": self.key.arn})


def key_policy(account_id: str, region: str, partition: str) -> dict:
    """The account administers the key; CloudWatch Logs may use it for this account's log groups only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
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
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                    }
                },
            },
        ],
    }
