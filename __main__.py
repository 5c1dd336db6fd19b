"""The Pulumi program: read stack config, build the components, export outputs.

The mappings and the config are checked first, so a broken mapping or a bad value fails
`pulumi preview` with the attribute or the key named, before anything is planned.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_aws as aws

from infra.alarms import Alarms, AlarmsArgs
from infra.backfill import Backfill, BackfillArgs
from infra.database import Database, DatabaseArgs
from infra.encryption import Encryption, EncryptionArgs
from infra.endpoint_policy import EndpointPolicy, EndpointPolicyArgs
from infra.export_schedule import ExportSchedule, ExportScheduleArgs
from infra.exports import Exports, ExportsArgs
from infra.flow_logs import FlowLogs, FlowLogsArgs
from infra.function import VpcFunctionArgs
from infra.migrations import Migrations, MigrationsArgs, migrations_fingerprint
from infra.network import STREAMS_SERVICE, Network, NetworkArgs
from infra.package import build_lambda_archive
from infra.redrive import Redrive, RedriveArgs
from infra.replication import Replication, ReplicationArgs
from infra.settings import OPTIONS, SettingsError, parse_settings
from infra.tables import Tables, TablesArgs
from schema.dynamodb import table_definition
from schema.model import load_mappings

config = pulumi.Config("ddbsync")
settings = parse_settings({key: config.get(key) for key in OPTIONS})
mappings = load_mappings()
unknown = sorted(set(settings.tables) - {m.dynamodb_table for m in mappings})
if unknown:
    raise SettingsError(
        f"ddbsync:tables names {unknown[0]!r}, which has no mapping "
        f"(mapped: {', '.join(m.dynamodb_table for m in mappings)})"
    )
deployed = [m for m in mappings if not settings.tables or m.dynamodb_table in settings.tables]
scheduled_exports = settings.scheduled_exports([m.dynamodb_table for m in deployed])

# AWS names (RDS identifiers above all) take lowercase letters, digits and hyphens; stack names more.
prefix = "ddbsync-" + re.sub(r"[^a-z0-9-]+", "-", pulumi.get_stack().lower()).strip("-")
identity = aws.get_caller_identity_output()
region = aws.get_region_output().region
partition = aws.get_partition_output().partition

encryption = Encryption(
    prefix,
    EncryptionArgs(
        account_id=identity.account_id,
        region=region,
        partition=partition,
        log_group_prefix=prefix,
        administrators=settings.kms_key_administrators,
        protect=settings.protect_resources,
    ),
)
zones = settings.availability_zones or tuple(aws.get_availability_zones(state="available").names[:2])
network = Network(
    prefix,
    NetworkArgs(
        region=region,
        cidr=settings.vpc_cidr,
        availability_zones=zones,
        existing_vpc_id=settings.existing_vpc_id,
        existing_subnet_ids=settings.existing_subnet_ids,
        existing_route_table_ids=settings.existing_route_table_ids,
        # SQS and DynamoDB Streams serve only the re-drive: without it, no endpoint for them.
        endpoint_services=("secretsmanager",)
        + (("sqs", STREAMS_SERVICE) if settings.redrive_schedule != "off" else ()),
    ),
)
if settings.flow_logs:
    flow_logs = FlowLogs(
        f"{prefix}-flow-logs",
        FlowLogsArgs(
            vpc_id=network.vpc_id,
            kms_key_arn=encryption.key_arn,
            account_id=identity.account_id,
            retention_days=settings.log_retention_days,
        ),
    )
database = Database(
    prefix,
    DatabaseArgs(
        subnet_ids=network.subnet_ids,
        security_group_id=network.database_sg.id,
        kms_key_arn=encryption.key_arn,
        database_name=settings.database_name,
        engine_version=settings.engine_version,
        min_capacity=settings.min_capacity,
        max_capacity=settings.max_capacity,
        deletion_protection=settings.deletion_protection,
        backup_retention_days=settings.backup_retention_days,
        rds_proxy=settings.rds_proxy,
        existing_cluster_endpoint=settings.existing_cluster_endpoint,
        existing_secret_arn=settings.existing_secret_arn,
        existing_cluster_resource_id=settings.existing_cluster_resource_id,
        log_retention_days=settings.log_retention_days,
        final_snapshot=settings.final_snapshot,
        keep_automated_backups=settings.keep_automated_backups,
        protect=settings.protect_resources,
        account_id=identity.account_id,
        region=region,
        partition=partition,
    ),
)
tables = Tables(
    prefix,
    TablesArgs(
        definitions=[table_definition(m) for m in deployed],
        kms_key_arn=encryption.key_arn,
        adopt=settings.adopt_tables,
        deletion_protection=settings.deletion_protection,
    ),
)

function = VpcFunctionArgs(
    handler="",
    archive=build_lambda_archive(settings.architecture),
    subnet_ids=network.subnet_ids,
    security_group_ids=[network.function_sg.id],
    kms_key_arn=encryption.key_arn,
    account_id=identity.account_id,
    region=region,
    partition=partition,
    architecture=settings.architecture,
    memory_mb=settings.memory_mb,
    timeout_seconds=settings.timeout_seconds,
    log_retention_days=settings.log_retention_days,
)
migrations = Migrations(
    f"{prefix}-migrate",
    MigrationsArgs(
        function=function,
        database_host=database.endpoint,
        database_name=settings.database_name,
        master_secret_arn=database.master_secret_arn,
        schema_owner_connect_arn=database.schema_owner_connect_arn,
        fingerprint=migrations_fingerprint(),
        database=database.instance,
        secrets_endpoint=network.endpoint_environment("secretsmanager"),
    ),
)
# Through the Secrets Manager endpoint, only the migrations' bootstrap may read, and only the master secret.
secrets_endpoint_policy = EndpointPolicy(
    f"{prefix}-secretsmanager-endpoint",
    EndpointPolicyArgs(
        endpoint_id=network.endpoints["secretsmanager"].id,
        principal_arns=[migrations.bootstrap.role.arn],
        actions=["secretsmanager:GetSecretValue"],
        resources=[database.master_secret_arn],
    ),
)
replication = Replication(
    f"{prefix}-replicator",
    ReplicationArgs(
        function=function,
        stream_arns=tables.stream_arns,
        database_host=database.replicator_host,
        database_name=settings.database_name,
        db_connect_arn=database.replicator_connect_arn,
        delivery=settings.delivery(),
        concurrency=settings.replicator_concurrency,
        depends_on=[migrations.invocation],
    ),
)
redrive = None
if settings.redrive_schedule != "off":
    redrive = Redrive(
        f"{prefix}-redrive",
        RedriveArgs(
            function=function,
            schedule_expression=settings.redrive_schedule,
            queue_arn=replication.queue.arn,
            queue_url=replication.queue.url,
            stream_arns=list(tables.stream_arns.values()),
            endpoint_environment=network.endpoint_environment("sqs", STREAMS_SERVICE),
            database_host=database.replicator_host,
            database_name=settings.database_name,
            db_connect_arn=database.replicator_connect_arn,
            depends_on=[migrations.invocation],
        ),
    )
exports = Exports(
    f"{prefix}-exports",
    ExportsArgs(
        kms_key_arn=encryption.key_arn,
        protect=settings.protect_resources,
        transition_days=settings.export_transition_days,
        transition_storage_class=settings.export_transition_storage_class,
        expiration_days=settings.export_expiration_days,
    ),
)
export_schedule = None
if scheduled_exports:
    # Outside the VPC (no database): it reaches DynamoDB and S3 on their public endpoints, no endpoint needed.
    export_schedule = ExportSchedule(
        f"{prefix}-export-schedule",
        ExportScheduleArgs(
            function=function,
            schedules=scheduled_exports,
            table_arns=tables.table_arns,
            bucket_name=exports.bucket_name,
            bucket_arn=exports.bucket_arn,
            alarm_topic_arn=settings.alarm_topic_arn,
        ),
    )
backfill = Backfill(
    f"{prefix}-backfill",
    BackfillArgs(
        function=function,
        bucket_arn=exports.bucket_arn,
        database_host=database.replicator_host,
        database_name=settings.database_name,
        db_connect_arn=database.replicator_connect_arn,
        concurrency=settings.backfill_concurrency,
        memory_mb=settings.backfill_memory_mb,
        max_receive_count=settings.backfill_max_receive_count,
        alarm_topic_arn=settings.alarm_topic_arn,
        depends_on=[migrations.invocation],
    ),
)
if network.s3_endpoint is not None:
    # Through the S3 gateway endpoint, only the backfill, and only reading this stack's exports.
    EndpointPolicy(
        f"{prefix}-s3-endpoint",
        EndpointPolicyArgs(
            endpoint_id=network.s3_endpoint.id,
            principal_arns=[backfill.function.role.arn],
            actions=["s3:GetObject"],
            resources=[exports.objects_arn],
        ),
    )
alarms = Alarms(
    prefix,
    AlarmsArgs(
        function_name=replication.function.function.name,
        queue_name=replication.queue.name,
        iterator_age_ms=settings.iterator_age_alarm_ms,
        topic_arn=settings.alarm_topic_arn,
    ),
)

if redrive is not None:
    # Through the SQS and DynamoDB Streams endpoints, only the re-drive, and only on this stack's queue and streams.
    for service, actions, resources in (
        ("sqs", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"], [replication.queue.arn]),
        (STREAMS_SERVICE, ["dynamodb:GetShardIterator", "dynamodb:GetRecords"], list(tables.stream_arns.values())),
    ):
        EndpointPolicy(
            f"{prefix}-{service}-endpoint",
            EndpointPolicyArgs(
                endpoint_id=network.endpoints[service].id,
                principal_arns=[redrive.function.role.arn],
                actions=actions,
                resources=resources,
            ),
        )

pulumi.export("mapped_tables", [m.dynamodb_table for m in deployed])
pulumi.export("stream_arns", tables.stream_arns)
pulumi.export("database_endpoint", database.endpoint)
pulumi.export("replicator_host", database.replicator_host)
pulumi.export("replicator_function", replication.function.function.name)
pulumi.export("on_failure_queue_url", replication.queue.url)
if redrive is not None:
    pulumi.export("redrive_function", redrive.function.function.name)
pulumi.export("master_secret_arn", database.master_secret_arn)
pulumi.export("exportBucket", exports.bucket_name)
pulumi.export("backfillQueueUrl", backfill.queue.url)
if export_schedule is not None:
    pulumi.export("exportScheduleFunction", export_schedule.function.name)
