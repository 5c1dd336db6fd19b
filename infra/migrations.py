"""Migrations on deploy: a one-time bootstrap with the master secret, then every run as the IAM schema owner.

Both are functions in the VPC running `handlers.migrate`. The bootstrap reads the RDS master user's
secret and migrates up to the revision that creates `ddbsync_schema_owner` (schema/grants.py); it runs
when that revision or the database changes, so in practice once per cluster. The migration runner logs
in as the schema owner with an IAM token, reads no secret, and runs `alembic upgrade head` whenever
migrations or mappings change, before replication starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.function import VpcFunction, VpcFunctionArgs
from infra.iam import statement
from infra.network import POSTGRES_PORT
from schema.grants import SCHEMA_OWNER_REVISION, SCHEMA_OWNER_ROLE

HANDLER = "handlers.migrate.handler"
ROOT = Path(__file__).resolve().parent.parent


def migrations_fingerprint(root: Path = ROOT) -> str:
    """A hash of everything that decides the database schema: migrations and mappings."""
    digest = hashlib.sha256()
    files = sorted((root / "schema" / "versions").glob("*.py")) + sorted((root / "schema" / "mappings").glob("*.toml"))
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class MigrationsArgs:
    function: VpcFunctionArgs
    database_host: pulumi.Input[str]
    database_name: str
    master_secret_arn: pulumi.Input[str]
    schema_owner_connect_arn: pulumi.Input[str]
    fingerprint: str
    database: pulumi.Resource | None = None
    # How the bootstrap reaches Secrets Manager where the endpoint has no private DNS (an existing VPC).
    secrets_endpoint: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class Migrations(pulumi.ComponentResource):
    """Bootstraps the schema owner once, then runs `alembic upgrade head` as it before replication starts."""

    def __init__(self, name: str, args: MigrationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Migrations", name, None, opts)
        database = {
            "DDBSYNC_DB_HOST": args.database_host,
            "DDBSYNC_DB_PORT": str(POSTGRES_PORT),
            "DDBSYNC_DB_NAME": args.database_name,
            "POWERTOOLS_SERVICE_NAME": "ddbsync-migrate",
        }
        self.bootstrap = VpcFunction(
            f"{name}-bootstrap",
            replace(
                args.function,
                handler=HANDLER,
                timeout_seconds=300,
                environment={
                    **database,
                    "DDBSYNC_DB_SECRET_ARN": args.master_secret_arn,
                    "DDBSYNC_MIGRATE_TO": SCHEMA_OWNER_REVISION,
                    **args.secrets_endpoint,
                },
                statements=[statement(["secretsmanager:GetSecretValue"], [args.master_secret_arn], "OwnerSecret")],
                key_services=("secretsmanager",),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.function = VpcFunction(
            name,
            replace(
                args.function,
                handler=HANDLER,
                timeout_seconds=300,
                environment={**database, "DDBSYNC_DB_IAM_USER": SCHEMA_OWNER_ROLE},
                statements=[statement(["rds-db:connect"], [args.schema_owner_connect_arn], "ConnectAsSchemaOwner")],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        after = [self.bootstrap] + ([args.database] if args.database is not None else [])
        self.bootstrap_invocation = aws.lambda_.Invocation(
            f"{name}-bootstrap-schema-owner",
            function_name=self.bootstrap.function.name,
            input=json.dumps({"trigger": f"bootstrap {SCHEMA_OWNER_REVISION}"}),
            # Again only for a new database (a replaced cluster has a new endpoint) or a new bootstrap revision.
            triggers={"revision": SCHEMA_OWNER_REVISION, "database": args.database_host},
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.invocation = aws.lambda_.Invocation(
            f"{name}-upgrade-head",
            function_name=self.function.function.name,
            input=json.dumps({"trigger": args.fingerprint}),
            triggers={"migrations": args.fingerprint},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function, self.bootstrap_invocation]),
        )
        self.register_outputs({"function_name": self.function.function.name})
