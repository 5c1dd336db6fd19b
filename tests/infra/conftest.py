"""Pulumi's mocks with the real pulumi_aws classes: every resource the program declares is recorded."""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest

from tests.conftest import ROOT

ACCOUNT, REGION = "123456789012", "eu-west-1"


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]


class RecordingMocks(pulumi.runtime.Mocks):
    """Fills in what AWS would compute (ARNs, endpoints, stream ARNs) and records every resource."""

    def __init__(self) -> None:
        self.resources: list[Declared] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(Declared(args.typ, args.name, args.inputs))
        service = args.typ.split(":")[1].split("/")[0]
        name = args.inputs.get("name", args.name)
        outputs = {**args.inputs, "arn": f"arn:aws:{service}:{REGION}:{ACCOUNT}:{args.name}"}
        if args.typ == "aws:dynamodb/table:Table":
            outputs["arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            outputs["streamArn"] = f"{outputs['arn']}/stream/2026-11-23T00:00:00.000"
        elif args.typ == "aws:rds/cluster:Cluster":
            outputs.update(
                arn=f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{args.name}",
                endpoint=f"{args.name}.cluster-abc.{REGION}.rds.amazonaws.com",
                clusterResourceId="cluster-RESOURCEID",
                masterUserSecrets=[
                    {
                        "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-x",
                        "secretStatus": "active",
                        "kmsKeyId": "k",
                    }
                ],
            )
        elif args.typ == "aws:rds/proxy:Proxy":
            outputs.update(
                arn=f"arn:aws:rds:{REGION}:{ACCOUNT}:db-proxy:prx-0123",
                endpoint=f"{args.name}.proxy-abc.{REGION}.rds.amazonaws.com",
            )
        elif args.typ == "aws:sqs/queue:Queue":
            outputs.update(name=args.name, url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{args.name}")
        elif args.typ == "aws:kms/key:Key":
            outputs.update(arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234", keyId="1234")
        elif args.typ == "aws:lambda/function:Function":
            outputs.update(arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", name=name)
        elif args.typ == "aws:iam/role:Role":
            outputs.update(arn=f"arn:aws:iam::{ACCOUNT}:role/{args.name}")
        elif args.typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            service = args.inputs["serviceName"].rsplit(".", 1)[1]
            dns = f"vpce-0abc-{service}.{REGION}.vpce.amazonaws.com"
            outputs.update(dnsEntries=[{"dnsName": dns, "hostedZoneId": "Z1"}])
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            outputs.update(arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}")
        elif args.typ == "aws:s3/bucket:Bucket":
            bucket = args.inputs.get("bucket", args.name)  # Pulumi's auto-name, without its random suffix here
            outputs.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        token, inputs = args.token, args.args
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "ci", "id": ACCOUNT}
        if token == "aws:index/getRegion:getRegion":
            return {"name": REGION, "region": REGION, "id": REGION}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:dynamodb/getTable:getTable":
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{inputs['name']}"
            return {"arn": arn, "streamArn": f"{arn}/stream/2025-01-01T00:00:00.000", "name": inputs["name"]}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
            return {"names": names, "zoneIds": names, "id": REGION, "state": "available"}
        if token == "aws:ec2/getPrefixList:getPrefixList":
            return {"id": "pl-s3", "prefixListId": "pl-s3", "name": inputs.get("name"), "cidrBlocks": ["52.0.0.0/15"]}
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": inputs.get("id"), "cidrBlock": "10.0.0.0/16"}
        raise LookupError(f"the test mocks do not answer {token}: add it to RecordingMocks.call")


class Deployment:
    """The resources one run of the program declared, found by type."""

    def __init__(self, resources: list[Declared], exports: dict[str, Any], program: dict[str, Any]) -> None:
        self.resources = resources
        self.exports = exports  # the stack outputs, resolved
        self.program = program  # the program's globals: its components, for what inputs do not show (`protect`)

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name_contains: str = "") -> Declared:
        (found,) = [r for r in self.of_type(typ) if name_contains in r.name]
        return found

    def stream_mappings(self) -> list[Declared]:
        """The event source mappings that read DynamoDB streams (not the backfill's SQS queue)."""
        return [
            m
            for m in self.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
            if ":dynamodb:" in m.inputs["eventSourceArn"]
        ]

    def policies(self) -> list[tuple[str, dict]]:
        """Every IAM role policy document, parsed."""
        return [(r.name, json.loads(r.inputs["policy"])) for r in self.of_type("aws:iam/rolePolicy:RolePolicy")]


def run_program(config: dict[str, Any] | None = None, stack: str = "dev") -> Deployment:
    """Run `__main__.py` under the mocks with this stack config."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="ddbsync", stack=stack, preview=False)
    values = {"aws:region": REGION}
    values.update(
        {
            f"ddbsync:{key}": value if isinstance(value, str) else json.dumps(value)
            for key, value in (config or {}).items()
        }
    )
    pulumi.runtime.set_all_config(values)
    exports: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        namespace.update(runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi__"))
        return pulumi.Output.all(namespace["replication"].function.function.name, pulumi.Output.all(**exports)).apply(
            lambda values: resolved.update(values[1])
        )

    original_export = pulumi.export
    pulumi.export = lambda name, value: exports.__setitem__(name, value)
    try:
        program()
    finally:
        pulumi.export = original_export
    return Deployment(mocks.resources, resolved, namespace)


@pytest.fixture(scope="session")
def dev() -> Deployment:
    return run_program()


@pytest.fixture(scope="session")
def prod() -> Deployment:
    return run_program({"environment": "prod", "alarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"}, stack="prod")
