"""The network the program declares: standalone rules, functions reaching named groups, endpoint policy, flow logs."""

from __future__ import annotations

import json

from tests.infra.conftest import ACCOUNT, REGION, run_program

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def peer(rule) -> str:
    """The other side of a rule: a security group or a prefix list (S3's, for its gateway endpoint)."""
    return rule.inputs.get("referencedSecurityGroupId") or rule.inputs.get("prefixListId")


def rules(deployment, typ: str, group: str) -> set[tuple[int, str]]:
    return {(r.inputs["fromPort"], peer(r)) for r in deployment.of_type(typ) if r.inputs["securityGroupId"] == group}


def test_security_groups_carry_no_inline_rules_that_a_refresh_would_fight_over(dev, prod):
    for deployment in (dev, prod):
        for group in deployment.of_type("aws:ec2/securityGroup:SecurityGroup"):
            assert not group.inputs.get("ingress") and not group.inputs.get("egress"), group.name
        for rule in deployment.of_type(INGRESS) + deployment.of_type(EGRESS):
            assert peer(rule) and not rule.inputs.get("cidrIpv4"), rule.name


def test_functions_reach_the_database_the_endpoints_and_s3_and_nothing_else(dev, prod):
    for deployment, stack in ((dev, "dev"), (prod, "prod")):
        functions, database, endpoints = (f"ddbsync-{stack}-{g}-id" for g in ("functions", "database", "endpoints"))
        # pl-s3: S3's prefix list in the mocks, what the gateway endpoint routes
        assert rules(deployment, EGRESS, functions) == {(5432, database), (443, endpoints), (443, "pl-s3")}
        assert (5432, functions) in rules(deployment, INGRESS, database)
        assert rules(deployment, INGRESS, endpoints) == {(443, functions)}
    # prod's proxy sits in the database group and reaches the cluster there, on the database port only
    assert rules(prod, INGRESS, "ddbsync-prod-database-id") == {
        (5432, "ddbsync-prod-functions-id"),
        (5432, "ddbsync-prod-database-id"),
    }


def test_through_the_secrets_manager_endpoint_only_the_bootstrap_reads_only_the_master_secret(dev):
    endpoint_policy = dev.one("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "secretsmanager").inputs
    assert endpoint_policy["vpcEndpointId"] == "ddbsync-dev-secretsmanager-id"
    (statement,) = json.loads(endpoint_policy["policy"])["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:role/ddbsync-dev-migrate-bootstrap-role"]},
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-x"],
    }


def test_flow_logs_record_the_vpcs_traffic_outside_dev_and_on_request(dev, prod):
    assert dev.of_type("aws:ec2/flowLog:FlowLog") == []
    for deployment, stack in ((prod, "prod"), (run_program({"flowLogs": True}, stack="dev-flow"), "dev-flow")):
        flow = deployment.one("aws:ec2/flowLog:FlowLog").inputs
        assert flow["vpcId"] == f"ddbsync-{stack}-vpc-id" and flow["trafficType"] == "ALL"
        group = deployment.one("aws:cloudwatch/logGroup:LogGroup", "flow-logs").inputs
        assert group["name"] == f"/aws/vpc/ddbsync-{stack}-flow-logs"
        assert group["kmsKeyId"].endswith(":key/1234") and group["retentionInDays"] == 30
        (trust,) = json.loads(deployment.one("aws:iam/role:Role", "flow-logs").inputs["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_through_the_sqs_and_streams_endpoints_only_the_redrive_reaches_only_this_stacks_queue_and_streams(dev):
    redrive_role = f"arn:aws:iam::{ACCOUNT}:role/ddbsync-dev-redrive-role"
    sqs = json.loads(dev.one("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "-sqs-").inputs["policy"])
    ((queue_statement),) = sqs["Statement"]
    assert queue_statement["Principal"] == {"AWS": [redrive_role]}
    assert queue_statement["Resource"] == [f"arn:aws:sqs:{REGION}:{ACCOUNT}:ddbsync-dev-replicator-on-failure"]
    streams = json.loads(dev.one("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "dynamodb-streams").inputs["policy"])
    ((stream_statement),) = streams["Statement"]
    assert stream_statement["Principal"] == {"AWS": [redrive_role]}
    assert all("/stream/" in arn for arn in stream_statement["Resource"])


def test_in_an_existing_vpc_the_functions_are_pointed_at_endpoints_without_private_dns():
    deployment = run_program(
        {"existingVpcId": "vpc-shared", "existingSubnetIds": ["subnet-a", "subnet-b"]}, stack="shared-vpc"
    )
    endpoints = deployment.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoints and not any(e.inputs["privateDnsEnabled"] for e in endpoints)
    redrive = deployment.one("aws:lambda/function:Function", "redrive").inputs["environment"]["variables"]
    assert (
        redrive["AWS_ENDPOINT_URL_SQS"].startswith("https://vpce-") and "AWS_ENDPOINT_URL_DYNAMODB_STREAMS" in redrive
    )
    bootstrap = deployment.one("aws:lambda/function:Function", "bootstrap").inputs["environment"]["variables"]
    assert bootstrap["AWS_ENDPOINT_URL_SECRETS_MANAGER"].startswith("https://vpce-")


def test_without_the_redrive_no_sqs_or_streams_endpoint_is_declared():
    deployment = run_program({"redriveSchedule": "off"}, stack="no-sqs")
    services = {
        e.inputs["serviceName"].rsplit(".", 1)[1] for e in deployment.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert services == {"secretsmanager", "s3"}, "S3's gateway endpoint stays: the backfill reads the exports"
