"""The Pulumi program under mocks: every resource of the Streams -> Aurora pipeline, as declared."""

from __future__ import annotations

import json
import re

import pytest

from infra.migrations import migrations_fingerprint
from infra.settings import SettingsError, parse_settings
from schema.dynamodb import table_definition
from schema.grants import SCHEMA_OWNER_REVISION
from schema.model import MappingError, load_mappings
from tests.infra.conftest import ACCOUNT, REGION, run_program

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
# Actions AWS offers no resource-level permissions for; each use carries a comment in infra/.
UNSCOPABLE = {
    "dynamodb:ListStreams",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "logs:DescribeLogGroups",
}


def test_one_table_per_mapping_with_the_mappings_key(dev):
    tables = {t.inputs["name"]: t.inputs for t in dev.of_type("aws:dynamodb/table:Table")}
    mappings = load_mappings()
    assert set(tables) == {m.dynamodb_table for m in mappings}
    for mapping in mappings:
        table, definition = tables[mapping.dynamodb_table], table_definition(mapping)
        assert (table["hashKey"], table.get("rangeKey")) == (mapping.key_names + (None,))[:2]
        assert {(a["name"], a["type"]) for a in table["attributes"]} == {
            (k.name, k.type) for k in definition.attribute_definitions
        }
        assert [k.name for k in definition.keys] == list(mapping.key_names)
        assert table["streamEnabled"] is True and table["streamViewType"] == "NEW_AND_OLD_IMAGES"
        assert table["pointInTimeRecovery"] == {"enabled": True}
        assert table["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KEY_ARN}
        assert table["billingMode"] == "PAY_PER_REQUEST"


def test_the_single_table_example_is_keyed_by_pk_and_sk_with_its_index_stream_and_trigger(dev):
    shop = dev.one("aws:dynamodb/table:Table", "-Shop").inputs
    assert (shop["hashKey"], shop["rangeKey"]) == ("PK", "SK")
    assert {(a["name"], a["type"]) for a in shop["attributes"]} == {("PK", "S"), ("SK", "S"), ("email", "S")}
    (index,) = shop["globalSecondaryIndexes"]
    assert (index["name"], index["hashKey"], index["projectionType"]) == ("ByEmail", "email", "KEYS_ONLY")
    assert shop["streamEnabled"] is True and shop["streamViewType"] == "NEW_AND_OLD_IMAGES"
    (trigger,) = [m.inputs for m in dev.stream_mappings() if m.inputs["eventSourceArn"].split("/")[1] == "Shop"]
    assert trigger["functionResponseTypes"] == ["ReportBatchItemFailures"]


def test_event_source_mappings_are_safe_for_streams(dev):
    queue_arn = dev.one("aws:sqs/queue:Queue", "replicator-on-failure").inputs
    mappings = dev.stream_mappings()
    assert sorted(m.inputs["eventSourceArn"].split("/")[1] for m in mappings) == sorted(
        m.dynamodb_table for m in load_mappings()
    )
    for mapping in mappings:
        settings = mapping.inputs
        assert settings["startingPosition"] == "TRIM_HORIZON"
        assert settings["bisectBatchOnFunctionError"] is False, "bad data never fails a batch: nothing to bisect"
        assert settings["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert settings["maximumRetryAttempts"] == -1, "an outage waits: retries without limit"
        assert settings["maximumRecordAgeInSeconds"] == 20 * 3600, "set aside while the stream still holds it"
        assert settings["batchSize"] == 100 and settings["maximumBatchingWindowInSeconds"] == 1
        assert settings["parallelizationFactor"] == 1
        assert settings["destinationConfig"]["onFailure"]["destinationArn"].endswith("replicator-on-failure")
        assert settings["functionName"].endswith(":function:ddbsync-dev-replicator")
    assert queue_arn["kmsMasterKeyId"] == KEY_ARN


def test_every_iam_statement_names_its_resources(dev, prod):
    for deployment in (dev, prod):
        assert deployment.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == [], "no managed policies"
        for name, document in deployment.policies():
            for statement in document["Statement"]:
                assert statement["Effect"] == "Allow"
                if statement["Resource"] == ["*"]:
                    assert set(statement["Action"]) <= UNSCOPABLE, (name, statement)
                else:
                    assert all(r != "*" and r.startswith("arn:aws:") for r in statement["Resource"]), (name, statement)


def policy(deployment, name: str) -> dict[str, dict]:
    (document,) = [d for n, d in deployment.policies() if n == name]
    return {s["Sid"]: s for s in document["Statement"]}


def test_replicator_reads_only_its_streams_and_connects_only_as_its_user(dev):
    statements = policy(dev, "ddbsync-dev-replicator-policy")
    streams = [t.inputs["name"] for t in dev.of_type("aws:dynamodb/table:Table")]
    assert sorted(statements["ReadOwnStreams"]["Resource"]) == sorted(
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}/stream/2026-11-23T00:00:00.000" for t in streams
    )
    assert statements["ConnectAsReplicator"]["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:cluster-RESOURCEID/ddbsync_replicator"
    ]
    assert not any(a.startswith("secretsmanager:") for s in statements.values() for a in s["Action"]), (
        "the replicator authenticates with IAM and reads no secret"
    )
    assert statements["StackKey"]["Resource"] == [KEY_ARN]
    assert statements["Logs"]["Resource"] == [
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/ddbsync-dev-replicator:*"
    ]


def test_migrations_read_the_master_secret_only_to_bootstrap_then_connect_as_the_schema_owner(dev):
    bootstrap = policy(dev, "ddbsync-dev-migrate-bootstrap-policy")
    assert bootstrap["OwnerSecret"]["Resource"] == [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-x"]
    assert "ReadOwnStreams" not in bootstrap and not any(s.startswith("Connect") for s in bootstrap)
    runner = policy(dev, "ddbsync-dev-migrate-policy")
    assert runner["ConnectAsSchemaOwner"]["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:cluster-RESOURCEID/ddbsync_schema_owner"
    ]
    assert not any(a.startswith("secretsmanager:") for s in runner.values() for a in s["Action"])
    variables = dev.one("aws:lambda/function:Function", "migrate-bootstrap").inputs["environment"]["variables"]
    assert variables["DDBSYNC_MIGRATE_TO"] == SCHEMA_OWNER_REVISION


def test_no_secret_in_any_function_environment(dev, prod):
    for deployment in (dev, prod):
        for function in deployment.of_type("aws:lambda/function:Function"):
            variables = function.inputs["environment"]["variables"]
            assert "DATABASE_URL" not in variables
            for name, value in variables.items():
                assert "PASSWORD" not in name and "TOKEN" not in name, name
                if "SECRET" in name:
                    assert name.endswith("_SECRET_ARN") and value.startswith("arn:aws:secretsmanager:"), name


def test_everything_is_encrypted_at_rest_with_the_stack_key(dev):
    cluster = dev.one("aws:rds/cluster:Cluster").inputs
    assert cluster["storageEncrypted"] is True and cluster["kmsKeyId"] == KEY_ARN
    assert cluster["manageMasterUserPassword"] is True and "masterPassword" not in cluster
    assert cluster["masterUserSecretKmsKeyId"] == KEY_ARN
    assert cluster["iamDatabaseAuthenticationEnabled"] is True
    for group in dev.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["kmsKeyId"] == KEY_ARN and group.inputs["retentionInDays"] == 30
    for function in dev.of_type("aws:lambda/function:Function"):
        assert function.inputs["kmsKeyArn"] == KEY_ARN
    key = dev.one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True
    logs = json.loads(key["policy"])["Statement"][1]
    assert logs["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}


def test_database_is_private_tls_only_and_serverless_v2(dev):
    instance = dev.one("aws:rds/clusterInstance:ClusterInstance").inputs
    assert instance["publiclyAccessible"] is False and instance["instanceClass"] == "db.serverless"
    cluster = dev.one("aws:rds/cluster:Cluster").inputs
    assert cluster["engine"] == "aurora-postgresql" and cluster["engineMode"] == "provisioned"
    assert cluster["serverlessv2ScalingConfiguration"] == {"minCapacity": 0.5, "maxCapacity": 4}
    parameters = dev.one("aws:rds/clusterParameterGroup:ClusterParameterGroup").inputs
    assert {"name": "rds.force_ssl", "value": "1"} in [
        {"name": p["name"], "value": p["value"]} for p in parameters["parameters"]
    ]
    assert dev.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert dev.of_type("aws:ec2/natGateway:NatGateway") == []
    for subnet in dev.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    assert len({s.inputs["availabilityZone"] for s in dev.of_type("aws:ec2/subnet:Subnet")}) >= 2
    (rule,) = [
        r.inputs
        for r in dev.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == "ddbsync-dev-database-id"
    ]
    assert rule["fromPort"] == rule["toPort"] == 5432
    assert rule["referencedSecurityGroupId"] == "ddbsync-dev-functions-id" and not rule.get("cidrIpv4")
    endpoint = dev.one("aws:ec2/vpcEndpoint:VpcEndpoint", "secretsmanager").inputs
    assert endpoint["serviceName"] == f"com.amazonaws.{REGION}.secretsmanager" and endpoint["privateDnsEnabled"]


def test_dev_has_no_proxy_and_no_deletion_protection(dev):
    assert dev.of_type("aws:rds/proxy:Proxy") == []
    assert dev.one("aws:rds/cluster:Cluster").inputs["deletionProtection"] is False


def test_prod_puts_an_iam_and_tls_proxy_in_front_and_protects_the_cluster(prod):
    proxy = prod.one("aws:rds/proxy:Proxy").inputs
    assert proxy["requireTls"] is True and proxy["defaultAuthScheme"] == "IAM_AUTH"
    assert proxy["engineFamily"] == "POSTGRESQL"
    database_sg = "ddbsync-prod-database-id"
    assert proxy["vpcSecurityGroupIds"] == [database_sg]
    for rule_type in (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    ):
        rule = prod.one(rule_type, "proxy-to-cluster").inputs
        assert rule["securityGroupId"] == rule["referencedSecurityGroupId"] == database_sg
        assert rule["fromPort"] == rule["toPort"] == 5432
    cluster = prod.one("aws:rds/cluster:Cluster").inputs
    assert cluster["deletionProtection"] is True and cluster["backupRetentionPeriod"] == 14
    replicator = prod.one("aws:lambda/function:Function", "replicator").inputs
    assert replicator["environment"]["variables"]["DDBSYNC_DB_HOST"].endswith(".proxy-abc.eu-west-1.rds.amazonaws.com")
    statements = policy(prod, "ddbsync-prod-replicator-policy")
    assert statements["ConnectAsReplicator"]["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:prx-0123/ddbsync_replicator"
    ]


def test_alarms_watch_lag_errors_and_dropped_records(dev, prod):
    alarms = {a.name: a.inputs for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    age = alarms["ddbsync-prod-iterator-age"]
    assert age["metricName"] == "IteratorAge" and age["threshold"] == 60000
    assert age["dimensions"] == {"FunctionName": "ddbsync-prod-replicator"}
    assert alarms["ddbsync-prod-errors"]["metricName"] == "Errors"
    assert alarms["ddbsync-prod-on-failure-queue"]["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert all(a["alarmActions"] == [f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"] for a in alarms.values())
    assert all(not a.inputs.get("alarmActions") for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))


def test_migrations_run_on_deploy_when_they_change(dev):
    invocation = dev.one("aws:lambda/invocation:Invocation", "upgrade-head").inputs
    assert invocation["functionName"] == "ddbsync-dev-migrate"
    assert invocation["triggers"] == {"migrations": migrations_fingerprint()}
    (migrate,) = [f.inputs for f in dev.of_type("aws:lambda/function:Function") if f.name == "ddbsync-dev-migrate"]
    assert migrate["handler"] == "handlers.migrate.handler"
    assert migrate["environment"]["variables"]["DDBSYNC_DB_IAM_USER"] == "ddbsync_schema_owner"
    bootstrap = dev.one("aws:lambda/invocation:Invocation", "bootstrap").inputs
    assert bootstrap["functionName"] == "ddbsync-dev-migrate-bootstrap"
    assert bootstrap["triggers"]["revision"] == SCHEMA_OWNER_REVISION, "once per cluster, not on every deploy"


def test_migration_fingerprint_follows_the_mappings(tmp_path):
    import shutil

    from tests.conftest import ROOT

    shutil.copytree(ROOT / "schema", tmp_path / "schema", ignore=shutil.ignore_patterns("__pycache__"))
    before = migrations_fingerprint(tmp_path)
    mapping = tmp_path / "schema" / "mappings" / "employees.toml"
    mapping.write_text(mapping.read_text() + 'empEmail = { type = "S" }\n')
    assert migrations_fingerprint(tmp_path) != before


def test_config_chooses_tables_architecture_and_capacity():
    deployment = run_program(
        {
            "tables": ["Employees"],
            "architecture": "x86_64",
            "minCapacity": 1,
            "maxCapacity": 8,
            "batchSize": 500,
            "maximumRetryAttempts": 2,
            "parallelizationFactor": 4,
        },
        stack="custom",
    )
    assert [t.inputs["name"] for t in deployment.of_type("aws:dynamodb/table:Table")] == ["Employees"]
    (mapping,) = deployment.stream_mappings()
    assert (
        mapping.inputs["batchSize"],
        mapping.inputs["maximumRetryAttempts"],
        mapping.inputs["parallelizationFactor"],
    ) == (500, 2, 4)
    assert deployment.one("aws:lambda/function:Function", "replicator").inputs["architectures"] == ["x86_64"]
    scaling = deployment.one("aws:rds/cluster:Cluster").inputs["serverlessv2ScalingConfiguration"]
    assert scaling == {"minCapacity": 1, "maxCapacity": 8}


def test_existing_tables_are_adopted_not_created():
    deployment = run_program({"adoptTables": ["Employees"]}, stack="adopt")
    assert sorted(t.inputs["name"] for t in deployment.of_type("aws:dynamodb/table:Table")) == ["Shop", "dynamotest"]
    sources = [
        m.inputs["eventSourceArn"] for m in deployment.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    ]
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Employees/stream/2025-01-01T00:00:00.000" in sources


def test_an_existing_vpc_and_cluster_can_be_used():
    deployment = run_program(
        {
            "existingVpcId": "vpc-1",
            "existingSubnetIds": ["subnet-a", "subnet-b"],
            "existingClusterEndpoint": "reporting.cluster-x.eu-west-1.rds.amazonaws.com",
            "existingSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:owner",
            "existingClusterResourceId": "cluster-REPORTING",
        },
        stack="existing",
    )
    assert deployment.of_type("aws:ec2/vpc:Vpc") == [] and deployment.of_type("aws:rds/cluster:Cluster") == []
    replicator = deployment.one("aws:lambda/function:Function", "replicator").inputs
    assert replicator["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert (
        replicator["environment"]["variables"]["DDBSYNC_DB_HOST"] == "reporting.cluster-x.eu-west-1.rds.amazonaws.com"
    )
    assert policy(deployment, "ddbsync-existing-replicator-policy")["ConnectAsReplicator"]["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:cluster-REPORTING/ddbsync_replicator"
    ], "rds-db:connect names the configured cluster, not every cluster of the region"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"batchSize": 0}, "ddbsync:batchSize = 0: allowed values are 1 to 10000"),
        ({"architecture": "sparc"}, "ddbsync:architecture = 'sparc': allowed values are arm64, x86_64"),
        ({"environment": "qa"}, "ddbsync:environment = 'qa': allowed values are dev, staging, prod"),
        ({"deletionProtection": "yes"}, "ddbsync:deletionProtection = 'yes': allowed values are true, false"),
        ({"logRetentionDays": 10}, "ddbsync:logRetentionDays = 10: allowed values are 1, 3, 5, 7, 14"),
        ({"minCapacity": 8, "maxCapacity": 2}, "ddbsync:minCapacity (8.0) must not exceed ddbsync:maxCapacity (2.0)"),
        ({"existingVpcId": "vpc-1"}, "ddbsync:existingVpcId and ddbsync:existingSubnetIds go together"),
        ({"batchSzie": 10}, "ddbsync:batchSzie is not an option"),
        ({"maximumRetryAttempts": -2}, "ddbsync:maximumRetryAttempts = -2: allowed values are -1 to 10000"),
        (
            {"maximumRecordAgeSeconds": 604800},
            "ddbsync:maximumRecordAgeSeconds = 604800: allowed values are 60 to 82800",
        ),
        ({"redriveSchedule": "hourly"}, "ddbsync:redriveSchedule = 'hourly': allowed values are a schedule expression"),
    ],
)
def test_bad_config_names_the_key_and_the_allowed_values(config, message):
    with pytest.raises(SettingsError) as error:
        parse_settings(config)
    assert message in str(error.value)


def test_bad_config_fails_the_program_before_any_resource():
    with pytest.raises(Exception, match="ddbsync:tables names 'Payroll', which has no mapping"):
        run_program({"tables": ["Payroll"]}, stack="bad")


def test_a_broken_mapping_fails_the_program_naming_the_attribute(tmp_path, monkeypatch):
    (tmp_path / "orders.toml").write_text('dynamodb_table = "Orders"\npartition_key = "pk"\n[attributes]\npk = "L"\n')
    monkeypatch.setenv("DDBSYNC_MAPPINGS", str(tmp_path))
    with pytest.raises(MappingError, match="mapping Orders.pk: a key attribute must be of type S, N, B, not L"):
        run_program(stack="broken")


def test_pulumi_yaml_documents_every_option_and_the_dev_stack_is_valid():
    import yaml

    from infra.settings import OPTIONS
    from tests.conftest import ROOT

    text = (ROOT / "Pulumi.yaml").read_text()
    project = yaml.safe_load(text)
    # Pulumi requires every key declared under `config:` without a default in every stack ("Stack 'dev'
    # is missing configuration value ..."), so the options without one are described in comments instead.
    assert all("default" in spec for spec in project["config"].values()), "a declared key without default"
    described = set(re.findall(r"^#   (\w+) \([^)]*\): \S", text, flags=re.MULTILINE))
    assert set(project["config"]) | described == set(OPTIONS) and not set(project["config"]) & described
    assert all(spec.get("description") for spec in project["config"].values())
    defaults = {key: spec["default"] for key, spec in project["config"].items() if "default" in spec}
    assert parse_settings(defaults) == parse_settings({}), "documented defaults are the real ones"
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    dev_config = {k.split(":", 1)[1]: v for k, v in stack.items() if k.startswith("ddbsync:")}
    deployment = run_program(dev_config, stack="dev-yaml")
    scaling = deployment.one("aws:rds/cluster:Cluster").inputs["serverlessv2ScalingConfiguration"]
    assert scaling == {"minCapacity": 0.5, "maxCapacity": 2}


def test_the_local_stack_runs_with_the_event_source_mappings_settings(dev):
    from ddbsync.local.stack import LocalStack

    local = LocalStack().settings
    mapping = dev.stream_mappings()[0].inputs
    deployed = {
        "batch_size": mapping["batchSize"],
        "maximum_batching_window_in_seconds": mapping["maximumBatchingWindowInSeconds"],
        "maximum_retry_attempts": mapping["maximumRetryAttempts"],
        "maximum_record_age_in_seconds": mapping["maximumRecordAgeInSeconds"],
        "bisect_batch_on_function_error": mapping["bisectBatchOnFunctionError"],
        "parallelization_factor": mapping["parallelizationFactor"],
        "starting_position": mapping["startingPosition"],
        "function_timeout_seconds": dev.one("aws:lambda/function:Function", "replicator").inputs["timeout"],
    }
    assert {name: getattr(local, name) for name in deployed} == deployed


def test_redrive_runs_on_a_schedule_with_only_the_queue_streams_and_replicator_login(dev):
    function = dev.one("aws:lambda/function:Function", "redrive").inputs
    assert function["handler"] == "handlers.redrive.handler"
    env = function["environment"]["variables"]
    assert env["DDBSYNC_ON_FAILURE_QUEUE_URL"].endswith("/ddbsync-dev-replicator-on-failure")
    assert env["DDBSYNC_DB_IAM_USER"] == "ddbsync_replicator" and "DDBSYNC_DB_SECRET_ARN" not in env
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == "https://vpce-0abc-dynamodb-streams.eu-west-1.vpce.amazonaws.com"
    (policy,) = [doc for name, doc in dev.policies() if name == "ddbsync-dev-redrive-policy"]
    granted = {tuple(st["Action"]): st["Resource"] for st in policy["Statement"]}
    assert granted[("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")] == [
        "arn:aws:sqs:eu-west-1:123456789012:ddbsync-dev-replicator-on-failure"
    ]
    assert all(
        arn.endswith("/stream/2026-11-23T00:00:00.000")
        for arn in granted[("dynamodb:GetShardIterator", "dynamodb:GetRecords")]
    )
    schedule = dev.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "rate(1 hour)"
    assert schedule["target"]["arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:ddbsync-dev-redrive"
    (invoke,) = [doc for name, doc in dev.policies() if name == "ddbsync-dev-redrive-scheduler"]
    assert invoke["Statement"][0]["Resource"] == [schedule["target"]["arn"]]


def test_functions_reach_sqs_and_streams_through_vpc_endpoints(dev):
    endpoints = {e.inputs["serviceName"]: e.inputs for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert endpoints["com.amazonaws.eu-west-1.sqs"]["privateDnsEnabled"] is True
    assert endpoints["com.amazonaws.eu-west-1.dynamodb-streams"]["privateDnsEnabled"] is False
    assert endpoints["com.amazonaws.eu-west-1.secretsmanager"]["vpcEndpointType"] == "Interface"


def test_redrive_schedule_can_be_turned_off():
    deployment = run_program({"redriveSchedule": "off"}, stack="manual")
    assert deployment.of_type("aws:scheduler/schedule:Schedule") == []
    handlers = {f.inputs["handler"] for f in deployment.of_type("aws:lambda/function:Function")}
    assert handlers == {"handlers.stream.handler", "handlers.migrate.handler", "handlers.backfill.handler"}
