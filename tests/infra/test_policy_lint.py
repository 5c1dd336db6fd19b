"""Every IAM policy the program declares passes parliament, the IAM policy linter, but for findings that do not apply.

Each finding left standing is listed below with why it does not apply; anything else fails the test
with the policy and the finding named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from parliament import analyze_policy_string
from parliament.finding import Finding

from tests.infra.conftest import Deployment

# (kind of policy, parliament's issue) -> why it does not apply here
NOT_APPLICABLE = {
    ("trust", "MALFORMED"): "a trust policy names who may assume the role; it has no Resource by design",
    ("key", "RESOURCE_STAR"): "in a key policy, Resource '*' means this key and no other",
    ("key", "PERMISSIONS_MANAGEMENT_ACTIONS"): (
        "the account statement AWS requires (kms:* for the account root, which lets IAM policies grant the key "
        "and keeps it manageable), and named administrators managing grants and the key policy"
    ),
    ("key", "MISMATCHED_TYPE"): (
        "CloudWatch Logs documents ArnLike on kms:EncryptionContext:aws:logs:arn; parliament types that key String"
    ),
}


@dataclass(frozen=True)
class Policy:
    kind: str  # identity, trust, key, endpoint, bucket
    owner: str
    document: dict


def declared_policies(deployment: Deployment) -> list[Policy]:
    """Every policy document among the declared resources' inputs."""
    kinds = {
        "aws:iam/rolePolicy:RolePolicy": ("policy", "identity"),
        "aws:iam/role:Role": ("assumeRolePolicy", "trust"),
        "aws:kms/key:Key": ("policy", "key"),
        "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy": ("policy", "endpoint"),
        "aws:s3/bucketPolicy:BucketPolicy": ("policy", "bucket"),
    }
    policies = []
    for resource in deployment.resources:
        field, kind = kinds.get(resource.type, (None, None))
        if field and resource.inputs.get(field):
            policies.append(Policy(kind, resource.name, json.loads(resource.inputs[field])))
    return policies


def does_not_apply(policy: Policy, finding: Finding) -> bool:
    """A finding that is about how parliament reads the policy, not about what the policy allows."""
    if (policy.kind, finding.issue) in NOT_APPLICABLE:
        return True
    if finding.issue == "PERMISSIONS_MANAGEMENT_ACTIONS" and finding.location.get("actions") == ["s3:putobjectacl"]:
        # DynamoDB's export to S3 asks its caller for s3:PutObjectAcl (AWS's list of an export's permissions); the
        # export bucket is BucketOwnerEnforced, so no ACL grants anything, and the scheduled export function has it
        # only under its tables' prefixes (checked in test_export_schedule).
        return True
    if finding.issue in ("CREDENTIALS_EXPOSURE", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        # rds-db:connect is how a role logs in to PostgreSQL with IAM, scoped to one database user ARN.
        return finding.location.get("actions") == ["rds-db:connect"]
    if finding.issue == "RESOURCE_MISMATCH":
        # A stream ARN ends in a label with colons (.../stream/2026-11-23T00:00:00.000), and parliament
        # splits ARNs at colons; the resources are the tables' own stream ARNs (checked in test_program).
        return all(d["required_format"] == "arn:*:dynamodb:*:*:table/*/stream/*" for d in finding.detail)
    return False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_policy_passes_parliament(stack, request):
    deployment: Deployment = request.getfixturevalue(stack)
    policies = declared_policies(deployment)
    assert {p.kind for p in policies} == {"identity", "trust", "key", "endpoint", "bucket"}
    findings = []
    for policy in policies:
        result = analyze_policy_string(json.dumps(policy.document), include_community_auditors=True)
        findings += [
            f"{policy.owner} ({policy.kind}): {f.issue} {f.detail}"
            for f in result.findings
            if not does_not_apply(policy, f)
        ]
    assert findings == [], "\n".join(findings)


def test_a_policy_that_names_no_resource_is_caught():
    # The linter is really run: a statement granting every table's data fails it.
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    findings = analyze_policy_string(json.dumps(document), include_community_auditors=True).findings
    assert "RESOURCE_STAR" in {f.issue for f in findings}
    assert not all(does_not_apply(Policy("identity", "probe", document), f) for f in findings)
