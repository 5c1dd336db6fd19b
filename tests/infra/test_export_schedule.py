"""Scheduled exports as declared: schedules, their target and input, scoped roles, alarms, the bucket's lifecycle."""

from __future__ import annotations

import json

import pytest
import yaml
from parliament import analyze_policy_string

from ddbsync.exports.schedule import SCHEDULED_TIME
from infra.settings import SettingsError, parse_settings
from schema.model import load_mappings
from tests.conftest import ROOT
from tests.infra.conftest import ACCOUNT, REGION, run_program
from tests.infra.test_policy_lint import declared_policies, does_not_apply

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
NAME = "ddbsync-sched-export-schedule"  # the component's name in the stack "sched"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{NAME}"
BUCKET_ARN = "arn:aws:s3:::ddbsync-sched-exports"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
CONFIG = {
    "alarmTopicArn": TOPIC,
    "exportSchedules": [
        {"name": "nightly", "schedule": "cron(30 2 * * ? *)", "timezone": "Europe/Berlin", "type": "full"},
        {"schedule": "rate(1 hour)", "type": "incremental", "tables": ["Shop"], "windowMinutes": 90},
    ],
    "exportTransitionDays": 30,
    "exportTransitionStorageClass": "GLACIER_IR",
    "exportExpirationDays": 365,
}


def table_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"


@pytest.fixture(scope="module")
def scheduled():
    return run_program(CONFIG, stack="sched")


def export_schedules(deployment) -> dict[str, dict]:
    return {s.name.removeprefix(f"{NAME}-"): s.inputs for s in deployment.of_type(SCHEDULE) if NAME in s.name}


def statements(deployment, policy_name: str) -> dict[str, dict]:
    (document,) = [d for n, d in deployment.policies() if n == policy_name]
    return {s["Sid"]: s for s in document["Statement"]}


# The schedules and what they send


def test_one_schedule_per_entry_in_its_time_zone_without_a_flexible_window(scheduled):
    schedules = export_schedules(scheduled)
    assert set(schedules) == {"nightly", "incremental"}, "an entry without a name is named by its type"
    nightly, hourly = schedules["nightly"], schedules["incremental"]
    assert nightly["scheduleExpression"] == "cron(30 2 * * ? *)"
    assert nightly["scheduleExpressionTimezone"] == "Europe/Berlin"
    assert hourly["scheduleExpression"] == "rate(1 hour)" and hourly["scheduleExpressionTimezone"] == "UTC"
    for schedule in schedules.values():
        assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
        assert schedule["name"].startswith(f"{NAME}-"), "the scheduler role trusts only these names"


def test_the_target_is_the_function_with_tables_type_window_and_the_scheduled_time(scheduled):
    schedules = export_schedules(scheduled)
    every_table = [m.dynamodb_table for m in load_mappings()]
    nightly = schedules["nightly"]["target"]
    assert nightly["arn"] == FUNCTION_ARN
    assert nightly["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{NAME}-scheduler"
    assert json.loads(nightly["input"]) == {
        "schedule": "nightly",
        "tables": every_table,
        "type": "FULL_EXPORT",
        "scheduledTime": SCHEDULED_TIME,
    }
    assert json.loads(schedules["incremental"]["target"]["input"]) == {
        "schedule": "incremental",
        "tables": ["Shop"],
        "type": "INCREMENTAL_EXPORT",
        "windowMinutes": 90,
        "scheduledTime": "<aws.scheduler.scheduled-time>",
    }
    assert nightly["retryPolicy"]["maximumEventAgeInSeconds"] <= 3600, "a late run is retried within the hour"


def test_the_scheduler_may_only_invoke_that_function_for_this_accounts_export_schedules(scheduled):
    role = scheduled.one("aws:iam/role:Role", f"{NAME}-scheduler").inputs
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {  # the schedule group, as Scheduler requires: not a schedule or a name prefix
        "StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/default",
        },
    }
    assert statements(scheduled, f"{NAME}-scheduler") == {
        "Export": {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [FUNCTION_ARN], "Sid": "Export"}
    }


# The function


def test_the_function_runs_outside_the_vpc_one_run_at_a_time_with_the_bucket_and_key(scheduled):
    function = scheduled.one("aws:lambda/function:Function", NAME).inputs
    replicator = scheduled.one("aws:lambda/function:Function", "replicator").inputs
    assert function["handler"] == "handlers.scheduled_export.handler"
    assert "vpcConfig" not in function, "it needs no database"
    assert function["reservedConcurrentExecutions"] == 1, "runs never overlap: two runs never plan one window"
    for same in ("runtime", "architectures", "sourceCodeHash", "kmsKeyArn"):
        assert function[same] == replicator[same], same
    variables = function["environment"]["variables"]
    assert variables["DDBSYNC_EXPORT_BUCKET"] == "ddbsync-sched-exports"
    assert variables["DDBSYNC_EXPORT_KMS_KEY_ARN"] == KEY_ARN
    assert variables["POWERTOOLS_SERVICE_NAME"] == NAME, "the metrics' service dimension names this stack"
    logs = scheduled.one("aws:cloudwatch/logGroup:LogGroup", NAME).inputs
    assert logs["name"] == f"/aws/lambda/{NAME}" and logs["kmsKeyId"] == KEY_ARN
    assert scheduled.exports["exportScheduleFunction"] == NAME


def test_the_function_may_export_only_the_scheduled_tables_into_their_prefixes(scheduled):
    granted = statements(scheduled, f"{NAME}-policy")
    tables = sorted(m.dynamodb_table for m in load_mappings())
    assert granted["Export"]["Action"] == [
        "dynamodb:DescribeTable",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:ExportTableToPointInTime",
    ]
    assert granted["Export"]["Resource"] == [table_arn(t) for t in tables]
    assert granted["DescribeExports"] == {
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeExport"],
        "Resource": [f"{table_arn(t)}/export/*" for t in tables],
        "Sid": "DescribeExports",
    }
    assert granted["ListExports"]["Action"] == ["dynamodb:ListExports"], "the one action DynamoDB cannot scope"
    assert granted["WriteExports"]["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl"]
    assert granted["WriteExports"]["Resource"] == [f"{BUCKET_ARN}/{t}/*" for t in tables]
    assert granted["StackKey"]["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert granted["StackKey"]["Resource"] == [KEY_ARN]
    assert granted["StackKey"]["Condition"] == {
        "StringEquals": {"kms:ViaService": [f"lambda.{REGION}.amazonaws.com", f"s3.{REGION}.amazonaws.com"]}
    }
    for sid, statement in granted.items():
        if sid != "ListExports":
            assert "*" not in statement["Resource"], (sid, statement)
    actions = {a for s in granted.values() for a in s["Action"]}
    assert not any(a.startswith(("s3:Get", "s3:Delete", "s3:List", "dynamodb:Get", "dynamodb:Put")) for a in actions)
    assert not any(a.startswith(("ec2:", "rds-db:", "secretsmanager:")) for a in actions)


def test_only_the_scheduled_tables_are_granted():
    deployment = run_program(
        {"exportSchedules": [{"schedule": "rate(1 day)", "tables": ["Employees"]}]}, stack="one-table"
    )
    granted = statements(deployment, "ddbsync-one-table-export-schedule-policy")
    assert granted["Export"]["Resource"] == [table_arn("Employees")]
    assert granted["WriteExports"]["Resource"] == ["arn:aws:s3:::ddbsync-one-table-exports/Employees/*"]


def test_every_export_schedule_policy_passes_parliament(scheduled):
    findings = []
    for policy in declared_policies(scheduled):
        if NAME not in policy.owner:
            continue
        result = analyze_policy_string(json.dumps(policy.document), include_community_auditors=True)
        findings += [f"{policy.owner}: {f.issue} {f.detail}" for f in result.findings if not does_not_apply(policy, f)]
    assert findings == [], "\n".join(findings)


# Alarms


def test_a_failed_export_and_a_failed_run_raise_alarms_on_the_stacks_topic(scheduled):
    for schedule in ("nightly", "incremental"):
        alarm = scheduled.one(ALARM, f"{NAME}-{schedule}-failed").inputs
        assert (alarm["namespace"], alarm["metricName"]) == ("ddbsync", "ExportsFailed")
        assert alarm["dimensions"] == {"service": NAME, "schedule": schedule}
        assert alarm["comparisonOperator"] == "GreaterThanThreshold" and alarm["threshold"] == 0
        assert alarm["treatMissingData"] == "ignore", "one data point per run: the state holds until the next"
        assert alarm["alarmActions"] == [TOPIC] and alarm["okActions"] == [TOPIC]
    errors = scheduled.one(ALARM, f"{NAME}-errors").inputs
    assert (errors["namespace"], errors["metricName"]) == ("AWS/Lambda", "Errors")
    assert errors["dimensions"] == {"FunctionName": NAME} and errors["alarmActions"] == [TOPIC]


# The bucket's lifecycle


def test_the_export_bucket_lifecycle_comes_from_config(scheduled, dev):
    (rule,) = scheduled.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["transitions"] == [{"days": 30, "storageClass": "GLACIER_IR"}]
    assert rule["expiration"] == {"days": 365}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    assert dev.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration") == [], "none by default"


def test_expiry_alone_needs_no_transition():
    deployment = run_program({"exportExpirationDays": 7}, stack="expiry")
    (rule,) = deployment.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert rule["expiration"] == {"days": 7} and "transitions" not in rule


# Defaults and the dev stack


def test_without_schedules_nothing_is_scheduled_or_granted(dev):
    assert [s.name for s in dev.of_type(SCHEDULE)] == ["ddbsync-dev-redrive"]
    assert not [f for f in dev.of_type("aws:lambda/function:Function") if "export-schedule" in f.name]
    assert "exportScheduleFunction" not in dev.exports


def test_the_dev_stack_schedules_every_example_table():
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    deployment = run_program({k.split(":", 1)[1]: v for k, v in stack.items() if k.startswith("ddbsync:")}, "dev-file")
    inputs = [json.loads(s.inputs["target"]["input"]) for s in deployment.of_type(SCHEDULE) if "export" in s.name]
    every_table = [m.dynamodb_table for m in load_mappings()]
    assert {(i["type"], tuple(i["tables"])) for i in inputs} == {
        ("FULL_EXPORT", tuple(every_table)),
        ("INCREMENTAL_EXPORT", tuple(every_table)),
    }


# Bad settings, named


@pytest.mark.parametrize(
    "schedules, message",
    [
        ("nightly", "ddbsync:exportSchedules = 'nightly': expected a list of schedules"),
        ([{"type": "full"}], "ddbsync:exportSchedules[0].schedule is required"),
        ([{"schedule": "every day"}], "ddbsync:exportSchedules[0].schedule = 'every day': 'every day': expected rate"),
        (
            [{"schedule": "cron(0 3 * * * *)"}],
            "ddbsync:exportSchedules[0].schedule = 'cron(0 3 * * * *)': 'cron(0 3 * * * *)': give `?` in exactly one",
        ),
        ([{"schedule": "rate(1 day)", "timezone": "Mars/Olympus"}], "ddbsync:exportSchedules[0].timezone = 'Mars/"),
        ([{"schedule": "rate(1 day)", "type": "differential"}], "[0].type = 'differential': allowed values are full"),
        (
            [{"schedule": "rate(1 day)", "type": "incremental", "windowMinutes": 5}],
            "ddbsync:exportSchedules[0].windowMinutes = 5: allowed values are 15 to 1440",
        ),
        ([{"schedule": "rate(1 day)", "windowMinutes": 60}], "[0].windowMinutes is for incremental schedules only"),
        (
            [{"schedule": "rate(5 minutes)", "type": "incremental"}],
            "ddbsync:exportSchedules[0].schedule = 'rate(5 minutes)': an incremental export covers 15 minutes",
        ),
        ([{"schedule": "rate(1 day)", "when": "now"}], "ddbsync:exportSchedules[0].when is not a field"),
        ([{"schedule": "rate(1 day)", "name": "Nightly!"}], "ddbsync:exportSchedules[0].name = 'Nightly!'"),
        (
            [{"schedule": "rate(1 day)"}, {"schedule": "cron(0 3 * * ? *)"}],
            "ddbsync:exportSchedules: two schedules are named 'full': give each its own name",
        ),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_key(schedules, message):
    with pytest.raises(SettingsError) as error:
        parse_settings({"exportSchedules": json.dumps(schedules) if not isinstance(schedules, str) else schedules})
    assert message in str(error.value)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"exportTransitionDays": 10}, "ddbsync:exportTransitionDays = 10: S3 moves objects to STANDARD_IA after 30"),
        ({"exportTransitionStorageClass": "COLD"}, "ddbsync:exportTransitionStorageClass = 'COLD': allowed values"),
        (
            {"exportTransitionDays": 30, "exportExpirationDays": 30},
            "ddbsync:exportExpirationDays (30) must exceed ddbsync:exportTransitionDays (30)",
        ),
        ({"exportExpirationDays": -1}, "ddbsync:exportExpirationDays = -1: allowed values are 0 to 36500"),
    ],
)
def test_a_bad_lifecycle_is_refused_naming_the_key(config, message):
    with pytest.raises(SettingsError) as error:
        parse_settings(config)
    assert message in str(error.value)


def test_schedules_naming_tables_that_are_not_deployed_or_chained_twice_fail_the_program():
    with pytest.raises(SettingsError, match=r"exportSchedules\[0\].tables names 'Payroll', which is not deployed"):
        run_program({"exportSchedules": [{"schedule": "rate(1 day)", "tables": ["Payroll"]}]}, stack="bad-table")
    twice = [
        {"name": "a", "schedule": "rate(1 hour)", "type": "incremental"},
        {"name": "b", "schedule": "rate(2 hours)", "type": "incremental", "tables": ["Shop"]},
    ]
    with pytest.raises(SettingsError, match="'Shop' has two incremental schedules \\('a' and 'b'\\)"):
        run_program({"exportSchedules": twice}, stack="bad-chain")
