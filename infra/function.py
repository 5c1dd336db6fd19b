"""A Lambda function in the VPC with its own role, encrypted log group and least-privilege policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.iam import assume_role_policy, statement
from infra.logs import log_group
from infra.package import LambdaArchive

RUNTIME = "python3.12"


@dataclass
class VpcFunctionArgs:
    handler: str
    archive: LambdaArchive
    subnet_ids: list[pulumi.Input[str]]
    security_group_ids: list[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    region: pulumi.Input[str]
    partition: pulumi.Input[str] = "aws"
    architecture: str = "arm64"
    memory_mb: int = 512
    timeout_seconds: int = 60
    reserved_concurrency: int | None = None  # at most this many at once (each holds a database connection)
    log_retention_days: int = 30
    environment: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # Statements beyond logs, network interfaces and the KMS key, as plain dicts with Output values.
    statements: list[dict[str, Any]] = field(default_factory=list)
    # AWS services that use the stack key for the function (reading an encrypted stream, sending to an
    # encrypted queue, reading a secret); the function's own code may not use the key directly.
    key_services: tuple[str, ...] = ()


class VpcFunction(pulumi.ComponentResource):
    """The function `name`, its log group `/aws/lambda/name`, and an IAM role that names its resources."""

    def __init__(self, name: str, args: VpcFunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:VpcFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = log_group(
            f"{name}-logs", f"/aws/lambda/{name}", args.kms_key_arn, args.log_retention_days, child
        )
        self.role = aws.iam.Role(
            f"{name}-role", assume_role_policy=assume_role_policy("lambda.amazonaws.com"), opts=child
        )
        base = pulumi.Output.all(
            self.log_group.arn, args.kms_key_arn, args.account_id, args.region, args.partition
        ).apply(lambda v: _base_statements(*v, key_services=("lambda", *args.key_services)))
        self.policy_document = pulumi.Output.all(base, args.statements).apply(
            lambda parts: json.dumps({"Version": "2012-10-17", "Statement": parts[0] + list(parts[1])})
        )
        self.policy = aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=self.policy_document, opts=child)
        self.function = aws.lambda_.Function(
            name,
            name=name,
            runtime=RUNTIME,
            architectures=[args.architecture],
            handler=args.handler,
            code=pulumi.FileArchive(str(args.archive.path)),
            source_code_hash=args.archive.sha256_base64,
            role=self.role.arn,
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            kms_key_arn=args.kms_key_arn,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=args.environment),
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=args.subnet_ids, security_group_ids=args.security_group_ids
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=self.log_group.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.log_group]),
        )
        self.register_outputs({"function_arn": self.function.arn})


def _base_statements(
    log_group_arn: str, key_arn: str, account: str, region: str, partition: str, key_services: tuple[str, ...]
) -> list[dict]:
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    key_use = statement(["kms:Decrypt", "kms:GenerateDataKey"], [key_arn], "StackKey")
    key_use["Condition"] = {
        "StringEquals": {"kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in sorted(key_services)]}
    }
    return [
        statement(["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn}:*"], "Logs"),
        key_use,
        statement(
            [
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            [f"{ec2}:network-interface/*", f"{ec2}:subnet/*", f"{ec2}:security-group/*"],
            "VpcNetworkInterfaces",
        ),
        # EC2 offers no resource-level permissions for Describe calls: "*" is the only choice here.
        statement(
            ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], ["*"], "VpcDescribe"
        ),
    ]
