"""Migrations on deploy: a runner function in the VPC, invoked whenever migrations or mappings change."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.function import VpcFunction, VpcFunctionArgs
from infra.iam import statement
from infra.network import POSTGRES_PORT

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
    fingerprint: str
    database: pulumi.Resource | None = None


class Migrations(pulumi.ComponentResource):
    """Runs `alembic upgrade head` as the owner role before replication starts."""

    def __init__(self, name: str, args: MigrationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Migrations", name, None, opts)
        function_args = replace(
            args.function,
            handler=HANDLER,
            timeout_seconds=300,
            environment={
                "DDBSYNC_DB_SECRET_ARN": args.master_secret_arn,
                "DDBSYNC_DB_HOST": args.database_host,
                "DDBSYNC_DB_PORT": str(POSTGRES_PORT),
                "DDBSYNC_DB_NAME": args.database_name,
                "POWERTOOLS_SERVICE_NAME": "ddbsync-migrate",
            },
            statements=[statement(["secretsmanager:GetSecretValue"], [args.master_secret_arn], "OwnerSecret")],
            key_services=("secretsmanager",),
        )
        self.function = VpcFunction(name, function_args, opts=pulumi.ResourceOptions(parent=self))
        after = [self.function] + ([args.database] if args.database is not None else [])
        self.invocation = aws.lambda_.Invocation(
            f"{name}-upgrade-head",
            function_name=self.function.function.name,
            input=json.dumps({"trigger": args.fingerprint}),
            triggers={"migrations": args.fingerprint},
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.register_outputs({"function_name": self.function.function.name})
