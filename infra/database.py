"""Aurora PostgreSQL Serverless v2: encrypted, TLS only, master password kept by RDS in Secrets Manager.

Three database roles: the master user, whose RDS-managed secret only the migrations' one-time bootstrap
reads; `ddbsync_schema_owner`, which owns the tables and runs the migrations with IAM authentication;
and `ddbsync_replicator`, created by a migration with DML rights on ddbsync's tables only
(schema/grants.py), which the replicator reaches with IAM authentication (no password anywhere). An
RDS Proxy with end-to-end IAM authentication and TLS can stand in front of the cluster. An existing
cluster can be named instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import assume_role_policy, policy_document, statement
from infra.logs import log_group
from infra.network import POSTGRES_PORT, allow_between
from schema.grants import REPLICATOR_ROLE, SCHEMA_OWNER_ROLE

REPLICATOR_DB_USER = REPLICATOR_ROLE
CLUSTER_PARAMETERS = {
    "rds.force_ssl": "1",
    # A failing statement's text and bound parameters carry item values: keep them out of the server log.
    "log_min_error_statement": "panic",
    # So does an error's DETAIL (the failing row, the conflicting key): log the primary message only.
    "log_error_verbosity": "terse",
}
MASTER_USER = "ddbsync_owner"


@dataclass
class DatabaseArgs:
    subnet_ids: list[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    database_name: str = "ddbsync"
    engine_version: str = "16.4"
    min_capacity: float = 0.5
    max_capacity: float = 4.0
    deletion_protection: bool = False
    backup_retention_days: int = 7
    rds_proxy: bool = False
    existing_cluster_endpoint: str | None = None
    existing_secret_arn: str | None = None
    existing_cluster_resource_id: str | None = None  # cluster-..., what `rds-db:connect` names
    log_retention_days: int = 30
    final_snapshot: bool = False
    keep_automated_backups: bool = False
    protect: bool = False  # `pulumi destroy` refuses to delete the cluster
    account_id: pulumi.Input[str] = ""
    region: pulumi.Input[str] = ""
    partition: pulumi.Input[str] = "aws"


def replicator_login(host: pulumi.Input[str], database_name: str) -> dict[str, pulumi.Input[str]]:
    """The environment of a function that connects as the replicator with an IAM token (no secret)."""
    return {
        "DDBSYNC_DB_IAM_USER": REPLICATOR_DB_USER,
        "DDBSYNC_DB_HOST": host,
        "DDBSYNC_DB_PORT": str(POSTGRES_PORT),
        "DDBSYNC_DB_NAME": database_name,
    }


def db_connect_arn(
    args: DatabaseArgs, resource_id: pulumi.Input[str], user: str = REPLICATOR_DB_USER
) -> pulumi.Output[str]:
    """What `rds-db:connect` names: one database user on one cluster or proxy."""
    return pulumi.Output.all(args.partition, args.region, args.account_id, resource_id).apply(
        lambda v: f"arn:{v[0]}:rds-db:{v[1]}:{v[2]}:dbuser:{v[3]}/{user}"
    )


class Database(pulumi.ComponentResource):
    """The cluster (or an existing one), its writer instance, and optionally an RDS Proxy."""

    endpoint: pulumi.Output[str]
    master_secret_arn: pulumi.Output[str]
    replicator_host: pulumi.Output[str]
    replicator_connect_arn: pulumi.Output[str]  # the resource of the replicator's `rds-db:connect`
    schema_owner_connect_arn: pulumi.Output[str]  # the migration runner's, on the cluster itself
    instance: aws.rds.ClusterInstance | None  # the writer, when the stack creates the cluster

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.port = POSTGRES_PORT
        self.database_name = args.database_name
        if args.existing_cluster_endpoint:
            self.endpoint = pulumi.Output.from_input(args.existing_cluster_endpoint)
            self.master_secret_arn = pulumi.Output.from_input(args.existing_secret_arn)
            self.replicator_host = self.endpoint
            self.replicator_connect_arn = db_connect_arn(args, args.existing_cluster_resource_id)
            self.schema_owner_connect_arn = db_connect_arn(args, args.existing_cluster_resource_id, SCHEMA_OWNER_ROLE)
            self.instance = None
            self.register_outputs({"endpoint": self.endpoint})
            return

        self.subnet_group = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=args.subnet_ids, opts=child)
        family = f"aurora-postgresql{args.engine_version.split('.')[0]}"
        self.parameters = aws.rds.ClusterParameterGroup(
            f"{name}-params",
            family=family,
            description="ddbsync: TLS required",
            parameters=[
                aws.rds.ClusterParameterGroupParameterArgs(name=key, value=value)
                for key, value in CLUSTER_PARAMETERS.items()
            ],
            opts=child,
        )
        # Named, so that the log group RDS exports to can be declared first, with the stack's key and
        # retention; left to RDS, it would be unencrypted and kept forever.
        identifier = f"{name}-cluster"
        self.log_group = log_group(
            f"{name}-postgresql-logs",
            f"/aws/rds/cluster/{identifier}/postgresql",
            args.kms_key_arn,
            args.log_retention_days,
            child,
        )
        self.cluster = aws.rds.Cluster(
            identifier,
            cluster_identifier=identifier,
            engine="aurora-postgresql",
            engine_mode="provisioned",
            engine_version=args.engine_version,
            database_name=args.database_name,
            master_username=MASTER_USER,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.kms_key_arn,
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            iam_database_authentication_enabled=True,
            db_subnet_group_name=self.subnet_group.name,
            db_cluster_parameter_group_name=self.parameters.name,
            vpc_security_group_ids=[args.security_group_id],
            serverlessv2_scaling_configuration=aws.rds.ClusterServerlessv2ScalingConfigurationArgs(
                min_capacity=args.min_capacity,
                max_capacity=args.max_capacity,
            ),
            backup_retention_period=args.backup_retention_days,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not args.final_snapshot,
            final_snapshot_identifier=f"{name}-final" if args.final_snapshot else None,
            delete_automated_backups=not args.keep_automated_backups,
            copy_tags_to_snapshot=True,
            enabled_cloudwatch_logs_exports=["postgresql"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group], protect=args.protect),
        )
        self.instance = aws.rds.ClusterInstance(
            f"{name}-writer",
            cluster_identifier=self.cluster.id,
            engine="aurora-postgresql",
            engine_version=self.cluster.engine_version,
            instance_class="db.serverless",
            db_subnet_group_name=self.subnet_group.name,
            publicly_accessible=False,
            opts=child,
        )
        self.endpoint = self.cluster.endpoint
        self.master_secret_arn = self.cluster.master_user_secrets.apply(lambda secrets: secrets[0]["secret_arn"])
        self.replicator_host = self.endpoint
        self.replicator_connect_arn = db_connect_arn(args, self.cluster.cluster_resource_id)
        self.schema_owner_connect_arn = db_connect_arn(args, self.cluster.cluster_resource_id, SCHEMA_OWNER_ROLE)
        if args.rds_proxy:
            self._proxy(name, args, child)
        self.register_outputs({"endpoint": self.endpoint, "replicator_host": self.replicator_host})

    def _proxy(self, name: str, args: DatabaseArgs, child: pulumi.ResourceOptions) -> None:
        """RDS Proxy with IAM authentication on both sides and TLS required: no password involved."""
        self.proxy_role = aws.iam.Role(
            f"{name}-proxy-role",
            assume_role_policy=assume_role_policy("rds.amazonaws.com"),
            opts=child,
        )
        self.proxy = aws.rds.Proxy(
            f"{name}-proxy",
            engine_family="POSTGRESQL",
            default_auth_scheme="IAM_AUTH",
            require_tls=True,
            role_arn=self.proxy_role.arn,
            vpc_subnet_ids=args.subnet_ids,
            vpc_security_group_ids=[args.security_group_id],
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-proxy-connect",
            role=self.proxy_role.id,
            policy=db_connect_arn(args, self.cluster.cluster_resource_id).apply(
                lambda arn: policy_document(statement(["rds-db:connect"], [arn]))
            ),
            opts=child,
        )
        # The proxy sits in the database's security group, which allows no one but the functions:
        # let members of the group reach each other on the database port (proxy -> cluster).
        self.proxy_rules = [
            allow_between(
                f"{name}-proxy-to-cluster-{direction}",
                rule,
                args.security_group_id,
                args.security_group_id,
                POSTGRES_PORT,
                "RDS Proxy to the cluster, both in the database group",
                child,
            )
            for direction, rule in (("in", aws.vpc.SecurityGroupIngressRule), ("out", aws.vpc.SecurityGroupEgressRule))
        ]
        self.proxy_target_group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-proxy-targets",
            db_proxy_name=self.proxy.name,
            opts=child,
        )
        self.proxy_target = aws.rds.ProxyTarget(
            f"{name}-proxy-target",
            db_proxy_name=self.proxy.name,
            target_group_name=self.proxy_target_group.name,
            db_cluster_identifier=self.cluster.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.instance]),
        )
        self.replicator_host = self.proxy.endpoint
        # The proxy's resource id is the last part of its ARN (arn:aws:rds:...:db-proxy:prx-...).
        self.replicator_connect_arn = db_connect_arn(args, self.proxy.arn.apply(lambda arn: arn.rsplit(":", 1)[-1]))
