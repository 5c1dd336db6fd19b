"""A VPC endpoint's policy: through this endpoint, only the named roles may make the named calls on the named resources.

A separate resource from the endpoint itself, because the endpoint is part of the network, which the
database and the functions are built on, while what it may be used for (the owner's secret, the
migration runner's role) exists only once they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class EndpointPolicyArgs:
    endpoint_id: pulumi.Input[str]
    principal_arns: list[pulumi.Input[str]]
    actions: list[str]
    resources: list[pulumi.Input[str]]


class EndpointPolicy(pulumi.ComponentResource):
    """Replaces the endpoint's default policy (any call by anyone in the VPC) with one statement."""

    def __init__(self, name: str, args: EndpointPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:EndpointPolicy", name, None, opts)
        self.document = pulumi.Output.all(
            pulumi.Output.all(*args.principal_arns), pulumi.Output.all(*args.resources)
        ).apply(
            lambda values: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": list(values[0])},
                            "Action": list(args.actions),
                            "Resource": list(values[1]),
                        }
                    ],
                }
            )
        )
        self.policy = aws.ec2.VpcEndpointPolicy(
            f"{name}-policy",
            vpc_endpoint_id=args.endpoint_id,
            policy=self.document,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
