"""Deploy edge cases a review found: each docstring tells what `pulumi up` met before; each test asserts it no more.

Every test runs the real program under `run_program` (the real pulumi_aws classes, mocked engine).
"""

from __future__ import annotations

import json
import re

import pytest

from infra.settings import SettingsError, parse_settings
from tests.infra.conftest import ACCOUNT, run_program

EXISTING_VPC = {"existingVpcId": "vpc-shared", "existingSubnetIds": ["subnet-a", "subnet-b"]}


def _endpoints_by_service(deployment) -> dict[str, object]:
    return {e.inputs["serviceName"].rsplit(".", 1)[1]: e for e in deployment.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}


def test_scheduler_role_can_be_assumed_only_for_this_accounts_schedules(dev):
    """Confused deputy: AWS asks for aws:SourceAccount / aws:SourceArn in a schedule's execution role.

    https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html
    The flow-log role already carries aws:SourceAccount (infra/flow_logs.py); the scheduler role
    (infra/redrive.py: assume_role_policy("scheduler.amazonaws.com")) carries nothing, so EventBridge
    Scheduler acting for any account could be made to assume it and invoke the re-drive.
    """
    role = dev.one("aws:iam/role:Role", "redrive-scheduler")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    conditions = {key: value for test in trust.get("Condition", {}).values() for key, value in test.items()}
    assert conditions.get("aws:SourceAccount") == ACCOUNT or str(conditions.get("aws:SourceArn", "")).startswith(
        f"arn:aws:scheduler:eu-west-1:{ACCOUNT}:schedule/"
    ), f"the scheduler role trusts scheduler.amazonaws.com without a source condition: {trust}"


def test_an_existing_vpc_gets_no_private_dns_endpoint_that_clashes_with_or_captures_its_own():
    """With existingVpcId the program still creates SQS and Secrets Manager endpoints with private DNS.

    A VPC without NAT (what existingVpcId is for) usually has these endpoints already; AWS refuses a
    second private-DNS endpoint for the same service ("private-dns-enabled cannot be set because there
    is already a conflicting DNS domain"), so `pulumi up` fails. Where it succeeds, every workload in
    the shared VPC now resolves secretsmanager.<region>.amazonaws.com to this stack's endpoint, whose
    policy (EndpointPolicy in __main__.py) allows only the bootstrap role: their GetSecretValue calls
    are denied.
    """
    deployment = run_program(EXISTING_VPC, stack="shared")
    private_dns = sorted(
        service for service, e in _endpoints_by_service(deployment).items() if e.inputs.get("privateDnsEnabled")
    )
    assert private_dns == [], f"private-DNS interface endpoints declared in an existing VPC: {private_dns}"


def test_sqs_and_streams_endpoints_do_not_keep_the_full_access_default_policy(dev):
    """Only the Secrets Manager endpoint gets a policy; SQS and DynamoDB Streams keep AWS's default
    (any principal, any action, any resource, any account): from inside the VPC, credentials can send to
    or read from any account's queues and streams through them. Invariant 5 (least privilege) asks for
    each to name this stack's queue and streams.
    """
    endpoints = _endpoints_by_service(dev)
    with_policy = {p.inputs["vpcEndpointId"] for p in dev.of_type("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")} | {
        f"{e.name}-id" for e in endpoints.values() if e.inputs.get("policy")
    }
    unrestricted = sorted(s for s, e in endpoints.items() if f"{e.name}-id" not in with_policy)
    assert unrestricted == [], f"interface endpoints left with the full-access default policy: {unrestricted}"


def test_replicator_fan_out_toward_aurora_is_capped_by_configured_concurrency(dev, prod):
    """DESIGN invariant 5: fan-out toward Aurora (parallelization included) is capped by configured
    concurrency sized to the database's connections. The replicator has no reserved concurrency: its
    concurrency is shards x parallelizationFactor, unbounded, each invocation one IAM-authenticated
    connection to a 0.5-4 ACU Serverless v2 cluster.
    """
    for deployment in (dev, prod):
        replicator = deployment.one("aws:lambda/function:Function", "replicator").inputs
        assert replicator.get("reservedConcurrentExecutions") == 10, (
            "the replicator's concurrency is not capped (no reserved_concurrent_executions)"
        )


@pytest.mark.parametrize("stack", ["Team_QA", "qa_1"])
def test_a_valid_pulumi_stack_name_gives_valid_rds_identifiers(stack):
    """Pulumi allows letters, digits, `_`, `-` and `.` in stack names; the cluster identifier
    `ddbsync-<stack>-cluster` (infra/database.py) must be lowercase letters, digits and single hyphens
    (the AWS provider validates `cluster_identifier` as lowercase alphanumerics and hyphens; RDS itself
    refuses `_`). `pulumi stack init Team_QA` then fails at preview.
    """
    deployment = run_program(stack=stack)
    identifier = deployment.one("aws:rds/cluster:Cluster").inputs["clusterIdentifier"]
    assert re.fullmatch(r"[a-z](?:-?[a-z0-9])*", identifier) and len(identifier) <= 63, identifier


def test_a_record_age_equal_to_the_streams_retention_is_refused():
    """infra/settings.py allows maximumRecordAgeSeconds up to 86400 inclusive, although its own comment
    says the age "stays below" the stream's 24 h: at 86400 a batch is set aside only when the stream is
    trimming it, so the hourly re-drive finds the range gone (TrimmedDataAccessException) and the
    records need a re-backfill (Delivery contract: never given up inside the stream's 24 h).
    """
    with pytest.raises(SettingsError):
        parse_settings({"maximumRecordAgeSeconds": "86400"})
