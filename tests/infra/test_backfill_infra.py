"""The export bucket and the backfill fan-out as declared: bucket, queues, function, mapping, the route to S3."""

from __future__ import annotations

import json

import pytest

from infra.settings import SettingsError, parse_settings
from tests.infra.conftest import ACCOUNT, REGION, run_program

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
BUCKET_ARN = "arn:aws:s3:::ddbsync-dev-exports"  # the mocks' bucket name: Pulumi's auto-name without its suffix
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ddbsync-dev-backfill-files"
DEAD_LETTERS_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ddbsync-dev-backfill-dead-letters"
BACKFILL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ddbsync-dev-backfill-role"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
EXISTING_VPC = {"existingVpcId": "vpc-shared", "existingSubnetIds": ["subnet-a", "subnet-b"]}


def backfill_mapping(deployment):
    (mapping,) = [m.inputs for m in deployment.of_type(ESM) if m.inputs["eventSourceArn"].startswith("arn:aws:sqs:")]
    return mapping


def s3_endpoints(deployment):
    return [e.inputs for e in deployment.of_type(ENDPOINT) if e.inputs["serviceName"].endswith(".s3")]


def statements(deployment, policy_name: str) -> dict[str, dict]:
    (document,) = [d for n, d in deployment.policies() if n == policy_name]
    return {s["Sid"]: s for s in document["Statement"]}


# The export bucket


def test_the_export_bucket_is_encrypted_with_the_stack_key_and_a_bucket_key(dev):
    bucket = dev.one("aws:s3/bucket:Bucket", "exports")
    (rule,) = dev.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs[
        "rules"
    ]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY_ARN}
    assert rule["bucketKeyEnabled"] is True
    assert dev.exports["exportBucket"] == "ddbsync-dev-exports"
    assert bucket.inputs["forceDestroy"] is True, "dev is torn down whole, exports included"


def test_the_export_bucket_blocks_public_access_and_owns_every_object(dev):
    block = dev.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block["bucket"] == "ddbsync-dev-exports-id"
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
    assert block["restrictPublicBuckets"] is True
    ownership = dev.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_the_export_bucket_policy_denies_requests_without_tls_and_grants_nothing(dev):
    (deny,) = json.loads(dev.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_outside_dev_a_destroy_keeps_the_export_bucket(prod):
    exports = prod.program["exports"]
    assert exports.bucket._protect is True
    assert prod.one("aws:s3/bucket:Bucket", "exports").inputs.get("forceDestroy") is not True


# The queue and its dead letters


def test_the_file_queue_is_encrypted_outlasts_the_function_and_sends_failures_to_its_dead_letter_queue(dev):
    queue = dev.one("aws:sqs/queue:Queue", "backfill-files").inputs
    dead_letters = dev.one("aws:sqs/queue:Queue", "backfill-dead-letters").inputs
    function = dev.one("aws:lambda/function:Function", "backfill").inputs
    assert queue["kmsMasterKeyId"] == KEY_ARN and dead_letters["kmsMasterKeyId"] == KEY_ARN
    assert queue["visibilityTimeoutSeconds"] >= 6 * function["timeout"], "AWS: six times the function's timeout"
    assert json.loads(queue["redrivePolicy"]) == {"deadLetterTargetArn": DEAD_LETTERS_ARN, "maxReceiveCount": 5}
    assert dead_letters["messageRetentionSeconds"] > queue["messageRetentionSeconds"], (
        "a dead letter keeps its first enqueue time: its queue must keep it longer"
    )
    assert dev.exports["backfillQueueUrl"] == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ddbsync-dev-backfill-files"


def test_dead_letters_raise_an_alarm_on_the_stacks_topic(dev, prod):
    alarm = prod.one("aws:cloudwatch/metricAlarm:MetricAlarm", "backfill-dead-letters").inputs
    assert alarm["dimensions"] == {"QueueName": "ddbsync-prod-backfill-dead-letters"}
    assert alarm["metricName"] == "ApproximateNumberOfMessagesVisible" and alarm["threshold"] == 0
    assert alarm["alarmActions"] == [f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"]
    assert dev.one("aws:cloudwatch/metricAlarm:MetricAlarm", "backfill-dead-letters").inputs["dimensions"]


# The function and its mapping


def test_the_backfill_function_is_packaged_and_logged_in_like_the_replicator(dev):
    backfill = dev.one("aws:lambda/function:Function", "backfill").inputs
    replicator = dev.one("aws:lambda/function:Function", "replicator").inputs
    assert backfill["handler"] == "handlers.backfill.handler"
    assert backfill["timeout"] == 900 and backfill["memorySize"] == 1024
    for same in ("runtime", "architectures", "sourceCodeHash", "vpcConfig", "kmsKeyArn"):
        assert backfill[same] == replicator[same], same
    assert backfill["code"].path == replicator["code"].path, "one archive for every function"
    assert backfill["vpcConfig"] == {
        "subnetIds": ["ddbsync-dev-private-eu-west-1a-id", "ddbsync-dev-private-eu-west-1b-id"],
        "securityGroupIds": ["ddbsync-dev-functions-id"],
    }
    database = {k: v for k, v in replicator["environment"]["variables"].items() if k.startswith("DDBSYNC_DB_")}
    assert database["DDBSYNC_DB_IAM_USER"] == "ddbsync_replicator"
    assert {k: v for k, v in backfill["environment"]["variables"].items() if k.startswith("DDBSYNC_DB_")} == database
    assert "reservedConcurrentExecutions" not in backfill, "the mapping's maximum concurrency caps it"


def test_one_data_file_per_invocation_with_partial_failures_and_a_capped_concurrency(dev):
    mapping = backfill_mapping(dev)
    assert mapping["eventSourceArn"] == QUEUE_ARN
    assert mapping["functionName"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ddbsync-dev-backfill"
    assert mapping["batchSize"] == 1
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["scalingConfig"] == {"maximumConcurrency": 4}


def test_concurrency_memory_and_tries_come_from_stack_config():
    deployment = run_program(
        {"backfillConcurrency": 12, "backfillMemoryMb": 2048, "backfillMaxReceiveCount": 3}, stack="sized"
    )
    assert backfill_mapping(deployment)["scalingConfig"] == {"maximumConcurrency": 12}
    assert deployment.one("aws:lambda/function:Function", "backfill").inputs["memorySize"] == 2048
    queue = deployment.one("aws:sqs/queue:Queue", "backfill-files").inputs
    assert json.loads(queue["redrivePolicy"])["maxReceiveCount"] == 3


@pytest.mark.parametrize(
    "value, message",
    [
        (1, "ddbsync:backfillConcurrency = 1: allowed values are 2 to 1000"),
        (1001, "ddbsync:backfillConcurrency = 1001: allowed values are 2 to 1000"),
        ("many", "ddbsync:backfillConcurrency = 'many': expected a number from 2 to 1000"),
    ],
)
def test_a_bad_backfill_concurrency_is_refused_naming_the_setting(value, message):
    with pytest.raises(SettingsError) as error:
        parse_settings({"backfillConcurrency": value})
    assert message in str(error.value)


def test_a_bad_backfill_concurrency_fails_the_program_before_any_resource():
    with pytest.raises(SettingsError, match="ddbsync:backfillConcurrency = '0': allowed values are 2 to 1000"):
        run_program({"backfillConcurrency": 0}, stack="bad-backfill")


def test_the_backfill_reads_only_the_export_objects_and_its_queue_with_the_stack_key(dev):
    granted = statements(dev, "ddbsync-dev-backfill-policy")
    assert granted["ReadExports"]["Action"] == ["s3:GetObject"], "each message names its file: no listing"
    assert granted["ReadExports"]["Resource"] == [f"{BUCKET_ARN}/*"]
    assert granted["BackfillQueue"]["Action"] == ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    assert granted["BackfillQueue"]["Resource"] == [QUEUE_ARN]
    assert granted["StackKey"]["Resource"] == [KEY_ARN]
    assert granted["StackKey"]["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"{service}.{REGION}.amazonaws.com" for service in ("lambda", "s3", "sqs")
    ], "the export objects, the function's environment, the encrypted queue"
    assert (
        granted["ConnectAsReplicator"]["Resource"]
        == statements(dev, "ddbsync-dev-replicator-policy")["ConnectAsReplicator"]["Resource"]
    )
    for sid, statement in granted.items():
        if sid != "VpcDescribe":  # EC2's Describe calls take no resource: the one "*" every function has
            assert "*" not in statement["Resource"], (sid, statement)
        else:
            assert all(a.startswith("ec2:Describe") for a in statement["Action"])
    assert not any(a.startswith(("s3:Put", "s3:Delete", "sqs:Send")) for s in granted.values() for a in s["Action"])


# The route to S3


def test_the_s3_gateway_endpoint_is_on_the_private_route_table_of_every_subnet(dev):
    (endpoint,) = s3_endpoints(dev)
    assert endpoint["serviceName"] == f"com.amazonaws.{REGION}.s3" and endpoint["vpcEndpointType"] == "Gateway"
    assert endpoint["vpcId"] == "ddbsync-dev-vpc-id"
    assert endpoint["routeTableIds"] == ["ddbsync-dev-private-id"]
    subnets = {s.name + "-id" for s in dev.of_type("aws:ec2/subnet:Subnet")}
    associations = dev.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert {a.inputs["subnetId"] for a in associations} == subnets
    assert {a.inputs["routeTableId"] for a in associations} == {"ddbsync-dev-private-id"}


def test_through_the_s3_endpoint_only_the_backfill_reads_only_the_export_objects(dev):
    policy = dev.one("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "-s3-").inputs
    assert policy["vpcEndpointId"] == "ddbsync-dev-s3-id"
    (statement,) = json.loads(policy["policy"])["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"AWS": [BACKFILL_ROLE]},
        "Action": ["s3:GetObject"],
        "Resource": [f"{BUCKET_ARN}/*"],
    }


def test_in_an_existing_vpc_the_s3_endpoint_goes_only_on_the_route_tables_named_for_it():
    without = run_program(EXISTING_VPC, stack="shared-no-routes")
    assert s3_endpoints(without) == [], "no S3 endpoint on route tables ddbsync does not own"
    assert without.of_type("aws:ec2/routeTable:RouteTable") == []
    named = run_program({**EXISTING_VPC, "existingRouteTableIds": ["rtb-a", "rtb-b"]}, stack="shared-routes")
    (endpoint,) = s3_endpoints(named)
    assert endpoint["vpcId"] == "vpc-shared" and endpoint["routeTableIds"] == ["rtb-a", "rtb-b"]
    assert named.of_type("aws:ec2/routeTable:RouteTable") == []
    for deployment in (without, named):
        egress = deployment.one("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "functions-to-s3").inputs
        assert (egress["prefixListId"], egress["fromPort"], egress["toPort"]) == ("pl-s3", 443, 443)


def test_route_tables_without_an_existing_vpc_are_refused():
    with pytest.raises(SettingsError, match="ddbsync:existingRouteTableIds names route tables of ddbsync:existingVpc"):
        parse_settings({"existingRouteTableIds": ["rtb-a"]})
