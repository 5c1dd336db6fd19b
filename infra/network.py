"""The private network: subnets in two or more zones, security groups, and the endpoints the functions use.

No NAT and no internet gateway: the functions reach each AWS service they call through an interface
endpoint (Secrets Manager for the migration runner; SQS and DynamoDB Streams for the re-drive) or,
for S3 (the backfill reading exports), a gateway endpoint on the private subnets' route table, and
only the functions may reach the database port. DynamoDB Streams' endpoint has no private DNS name:
its callers are given the endpoint's own DNS name (`endpoint_url`).

In an existing VPC the S3 gateway endpoint goes only on route tables named for it: AWS refuses a
second S3 gateway endpoint on a route table, and one of ours (with its policy naming only the
export bucket) would capture every other workload's S3 traffic from subnets sharing that table.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

POSTGRES_PORT = 5432
SecurityGroupRule = type[aws.vpc.SecurityGroupIngressRule] | type[aws.vpc.SecurityGroupEgressRule]
STREAMS_SERVICE = "dynamodb-streams"
# Services whose interface endpoint offers no private DNS: clients use the endpoint's own name.
WITHOUT_PRIVATE_DNS = frozenset({STREAMS_SERVICE})
# boto3's variable naming the endpoint of one service.
ENDPOINT_VARIABLES = {
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "sqs": "AWS_ENDPOINT_URL_SQS",
    STREAMS_SERVICE: "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
}


@dataclass
class NetworkArgs:
    region: pulumi.Input[str]
    cidr: str = "10.42.0.0/16"
    availability_zones: tuple[str, ...] = ()  # two or more; Aurora needs subnets in two zones
    existing_vpc_id: str | None = None
    existing_subnet_ids: tuple[str, ...] = ()
    # Route tables of the existing subnets to put the S3 gateway endpoint on; none: S3 is routed already.
    existing_route_table_ids: tuple[str, ...] = ()
    # Interface endpoints the functions need.
    endpoint_services: tuple[str, ...] = field(default=("secretsmanager", "sqs", STREAMS_SERVICE))


class Network(pulumi.ComponentResource):
    """VPC (new or existing), private subnets, and the security groups between functions and database."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.existing = bool(args.existing_vpc_id)
        if args.existing_vpc_id:
            self.vpc_id: pulumi.Input[str] = args.existing_vpc_id
            self.subnet_ids: list[pulumi.Input[str]] = list(args.existing_subnet_ids)
            self.route_table_ids: list[pulumi.Input[str]] = list(args.existing_route_table_ids)
        else:
            zones = args.availability_zones
            if len(zones) < 2:
                raise ValueError("the network needs at least two availability zones for Aurora's subnet group")
            self.vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=args.cidr,
                enable_dns_hostnames=True,
                enable_dns_support=True,
                tags={"Name": f"{name}-vpc"},
                opts=child,
            )
            blocks = ipaddress.ip_network(args.cidr).subnets(new_prefix=24)
            self.subnets = [
                aws.ec2.Subnet(
                    f"{name}-private-{zone}",
                    vpc_id=self.vpc.id,
                    availability_zone=zone,
                    cidr_block=str(next(blocks)),
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{name}-private-{zone}"},
                    opts=child,
                )
                for zone in zones
            ]
            self.vpc_id = self.vpc.id
            self.subnet_ids = [s.id for s in self.subnets]
            # One private route table for every zone (there is no NAT per zone to tell them apart): the
            # VPC's local route and, below, S3's gateway endpoint.
            self.route_table = aws.ec2.RouteTable(
                f"{name}-private", vpc_id=self.vpc.id, tags={"Name": f"{name}-private"}, opts=child
            )
            self.route_table_associations = [
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{zone}", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=child
                )
                for zone, subnet in zip(zones, self.subnets)
            ]
            self.route_table_ids = [self.route_table.id]

        # Rules are standalone resources only: inline rules and rule resources on one group overwrite
        # each other on refresh. The functions reach the database and the endpoints' groups and S3's
        # prefix list (below), not the VPC.
        self.function_sg = aws.ec2.SecurityGroup(
            f"{name}-functions", vpc_id=self.vpc_id, description="ddbsync Lambda functions", opts=child
        )
        self.database_sg = aws.ec2.SecurityGroup(
            f"{name}-database", vpc_id=self.vpc_id, description="ddbsync Aurora PostgreSQL", opts=child
        )
        self.endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints", vpc_id=self.vpc_id, description="ddbsync VPC interface endpoints", opts=child
        )
        egress, ingress = aws.vpc.SecurityGroupEgressRule, aws.vpc.SecurityGroupIngressRule
        functions, database, endpoints = self.function_sg.id, self.database_sg.id, self.endpoint_sg.id
        self.rules = [
            allow_between(
                f"{name}-functions-to-database",
                egress,
                functions,
                database,
                POSTGRES_PORT,
                "PostgreSQL: the cluster or its proxy",
                child,
            ),
            allow_between(
                f"{name}-functions-to-endpoints",
                egress,
                functions,
                endpoints,
                443,
                "AWS APIs through the VPC interface endpoints",
                child,
            ),
            allow_between(
                f"{name}-database-from-functions",
                ingress,
                database,
                functions,
                POSTGRES_PORT,
                "replicator and migration runner only",
                child,
            ),
            allow_between(
                f"{name}-endpoints-from-functions",
                ingress,
                endpoints,
                functions,
                443,
                "HTTPS from the functions",
                child,
            ),
        ]
        # S3 is reached through a gateway endpoint, i.e. by route, at S3's addresses: its prefix list.
        s3_prefix_list = aws.ec2.get_prefix_list_output(name=pulumi.Output.concat("com.amazonaws.", args.region, ".s3"))
        self.rules.append(
            egress(
                f"{name}-functions-to-s3",
                security_group_id=functions,
                prefix_list_id=s3_prefix_list.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="S3 (the export bucket) through the gateway endpoint",
                opts=child,
            )
        )
        self.s3_endpoint: aws.ec2.VpcEndpoint | None = None
        if self.route_table_ids:
            self.s3_endpoint = aws.ec2.VpcEndpoint(
                f"{name}-s3",
                vpc_id=self.vpc_id,
                vpc_endpoint_type="Gateway",
                service_name=pulumi.Output.concat("com.amazonaws.", args.region, ".s3"),
                route_table_ids=self.route_table_ids,
                opts=child,
            )
        self.endpoints = {
            service: aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=self.vpc_id,
                vpc_endpoint_type="Interface",
                service_name=pulumi.Output.concat("com.amazonaws.", args.region, f".{service}"),
                subnet_ids=self.subnet_ids,
                security_group_ids=[self.endpoint_sg.id],
                private_dns_enabled=self.private_dns(service),
                opts=child,
            )
            for service in args.endpoint_services
        }
        self.register_outputs({"vpc_id": self.vpc_id, "subnet_ids": self.subnet_ids})

    def private_dns(self, service: str) -> bool:
        """Whether the service's endpoint answers for its public name in the VPC.

        Never in an existing VPC: it may hold such endpoints already (AWS refuses a second one), and
        one of ours would capture every other workload's calls under our endpoint's policy.
        """
        return not self.existing and service not in WITHOUT_PRIVATE_DNS

    def endpoint_url(self, service: str) -> pulumi.Output[str]:
        """`https://` and the regional DNS name of the service's interface endpoint."""
        return self.endpoints[service].dns_entries.apply(lambda entries: f"https://{entries[0].dns_name}")

    def endpoint_environment(self, *services: str) -> dict[str, pulumi.Input[str]]:
        """What a function calling `services` needs to reach them here: boto3's per-service endpoint
        variables (`AWS_ENDPOINT_URL_SQS`, ...) for each endpoint without private DNS."""
        return {
            ENDPOINT_VARIABLES[service]: self.endpoint_url(service)
            for service in services
            if service in self.endpoints and not self.private_dns(service)
        }


def allow_between(
    name: str,
    rule: SecurityGroupRule,
    group_id: pulumi.Input[str],
    peer_group_id: pulumi.Input[str],
    port: int,
    description: str,
    opts: pulumi.ResourceOptions,
) -> pulumi.CustomResource:
    """One TCP port between two security groups, as a standalone rule (never an inline one)."""
    return rule(
        name,
        security_group_id=group_id,
        referenced_security_group_id=peer_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        opts=opts,
    )
