"""What `pulumi up` deploys is hardened: logs without item data, backups that outlive a destroy, a managed key."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest

from tests.infra.conftest import ACCOUNT, REGION, run_program

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"


def parameters(deployment) -> dict[str, str]:
    group = deployment.one("aws:rds/clusterParameterGroup:ClusterParameterGroup").inputs
    return {p["name"]: p["value"] for p in group["parameters"]}


def test_the_clusters_log_export_lands_in_a_declared_encrypted_expiring_log_group(dev, prod):
    for deployment, stack in ((dev, "dev"), (prod, "prod")):
        cluster = deployment.one("aws:rds/cluster:Cluster").inputs
        assert cluster["clusterIdentifier"] == f"ddbsync-{stack}-cluster"
        assert cluster["enabledCloudwatchLogsExports"] == ["postgresql"]
        group = deployment.one("aws:cloudwatch/logGroup:LogGroup", "postgresql").inputs
        assert group["name"] == f"/aws/rds/cluster/ddbsync-{stack}-cluster/postgresql"
        assert group["kmsKeyId"] == KEY_ARN and group["retentionInDays"] == 30


def test_the_server_log_holds_no_statement_parameters_and_no_detail(dev, prod):
    for deployment in (dev, prod):
        assert parameters(deployment) == {
            "rds.force_ssl": "1",
            "log_min_error_statement": "panic",
            "log_error_verbosity": "terse",
        }


def test_dev_is_torn_down_whole(dev):
    cluster = dev.one("aws:rds/cluster:Cluster").inputs
    assert cluster["skipFinalSnapshot"] is True and cluster["deleteAutomatedBackups"] is True
    assert not dev.program["database"].cluster._protect and not dev.program["encryption"].key._protect


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_outside_dev_a_destroy_keeps_a_final_snapshot_the_backups_and_the_key(environment, prod):
    deployment = prod if environment == "prod" else run_program({"environment": "staging"}, stack="staging")
    cluster = deployment.one("aws:rds/cluster:Cluster").inputs
    assert cluster["skipFinalSnapshot"] is False and cluster["finalSnapshotIdentifier"].endswith("-final")
    assert cluster["deleteAutomatedBackups"] is False
    assert deployment.program["database"].cluster._protect is True, "pulumi destroy refuses to delete the cluster"
    assert deployment.program["encryption"].key._protect is True, "nor schedules the key of every backup for deletion"


def test_each_safeguard_can_be_turned_off_in_stack_config():
    deployment = run_program(
        {"environment": "prod", "finalSnapshot": False, "keepAutomatedBackups": False, "protectResources": False},
        stack="prod-unguarded",
    )
    cluster = deployment.one("aws:rds/cluster:Cluster").inputs
    assert cluster["skipFinalSnapshot"] is True and cluster["deleteAutomatedBackups"] is True
    assert not deployment.program["database"].cluster._protect and not deployment.program["encryption"].key._protect


def key_statements(deployment) -> dict[str, dict]:
    policy = json.loads(deployment.one("aws:kms/key:Key").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_cloudwatch_logs_may_use_the_key_for_this_stacks_log_groups_only(dev, prod):
    for deployment in (dev, prod):
        patterns = key_statements(deployment)["CloudWatchLogsUse"]["Condition"]["ArnLike"][
            "kms:EncryptionContext:aws:logs:arn"
        ]
        groups = [g.inputs["name"] for g in deployment.of_type("aws:cloudwatch/logGroup:LogGroup")]
        assert len(groups) >= 3
        for group in groups:
            arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
            assert any(fnmatchcase(arn, p) for p in patterns), (group, patterns)
        other_stack = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/ddbsync-other-replicator"
        assert not any(fnmatchcase(other_stack, p) for p in patterns)


def test_named_administrators_manage_the_key_but_cannot_use_it():
    admin = f"arn:aws:iam::{ACCOUNT}:role/platform-admins"
    statements = key_statements(run_program({"kmsKeyAdministrators": [admin]}, stack="admins"))
    administrators = statements["KeyAdministrators"]
    assert administrators["Principal"] == {"AWS": [admin]}
    assert {"kms:Put*", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"} <= set(administrators["Action"])
    assert not any(
        a.startswith(("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")) for a in administrators["Action"]
    )
    # The account statement stays: without it IAM policies could not grant the key and it could become unmanageable.
    assert statements["AccountEnablesIamPolicies"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def via_services(deployment, policy_name: str) -> list[str]:
    (document,) = [d for n, d in deployment.policies() if n == policy_name]
    (key_use,) = [s for s in document["Statement"] if s["Sid"] == "StackKey"]
    assert key_use["Resource"] == [KEY_ARN]
    return key_use["Condition"]["StringEquals"]["kms:ViaService"]


def test_functions_use_the_key_only_through_the_services_that_need_it(dev):
    assert via_services(dev, "ddbsync-dev-replicator-policy") == [
        f"{service}.{REGION}.amazonaws.com" for service in ("dynamodb", "lambda", "sqs")
    ], "the encrypted stream, the function's environment, the encrypted on-failure queue"
    assert via_services(dev, "ddbsync-dev-migrate-bootstrap-policy") == [
        f"{service}.{REGION}.amazonaws.com" for service in ("lambda", "secretsmanager")
    ], "the function's environment, the master user's encrypted secret"
    assert via_services(dev, "ddbsync-dev-migrate-policy") == [f"lambda.{REGION}.amazonaws.com"]
    assert via_services(dev, "ddbsync-dev-redrive-policy") == [
        f"{service}.{REGION}.amazonaws.com" for service in ("dynamodb", "lambda", "sqs")
    ], "the re-drive reads the same encrypted queue and streams as the replicator"
