"""The migration runner Lambda: bootstrapped once with the master secret, then run as the IAM schema owner."""

from __future__ import annotations

import importlib
import json
import sys

import psycopg2

from schema.grants import SCHEMA_OWNER_REVISION
from tests.conftest import admin, database_url


def load_migrate(monkeypatch, server, name: str, **env):
    """Import handlers.migrate afresh with this environment, pointed at database `name` over verified TLS."""
    for key in ("DATABASE_URL", "DDBSYNC_DB_SECRET_ARN", "DDBSYNC_DB_IAM_USER", "DDBSYNC_MIGRATE_TO"):
        monkeypatch.delenv(key, raising=False)
    env = {
        "DDBSYNC_DB_HOST": "127.0.0.1",
        "DDBSYNC_DB_PORT": str(server.port),
        "DDBSYNC_DB_NAME": name,
        "DDBSYNC_DB_SSLROOTCERT": str(server.certificate),
        **env,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("handlers.migrate", None)
    return importlib.import_module("handlers.migrate")


def test_bootstrap_with_the_master_secret_then_every_deploy_as_the_iam_schema_owner(monkeypatch, aws, tls_server):
    server, _ = tls_server
    admin(server.url, "CREATE DATABASE fresh")
    secret = aws.create_secret(Name="rds!cluster", SecretString=json.dumps({"username": "postgres", "password": "x"}))

    # Given the deploy's bootstrap step: the master secret, up to the migration that creates the schema owner
    bootstrap = load_migrate(
        monkeypatch, server, "fresh", DDBSYNC_DB_SECRET_ARN=secret["ARN"], DDBSYNC_MIGRATE_TO=SCHEMA_OWNER_REVISION
    )
    first = bootstrap.handler({"trigger": "bootstrap"}, None)
    assert first == {"before": None, "after": SCHEMA_OWNER_REVISION, "user": "postgres"}

    # When the deploy's migration runner logs in as the schema owner with an IAM token, with no secret at all
    aws.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    runner = load_migrate(monkeypatch, server, "fresh", DDBSYNC_DB_IAM_USER="ddbsync_schema_owner")
    again = runner.handler({"trigger": "abc"}, None)

    # Then it reaches head as that role, and running it again changes nothing
    assert again["user"] == "ddbsync_schema_owner" and again["before"] == SCHEMA_OWNER_REVISION
    assert runner.handler({"trigger": "abc"}, None)["after"] == again["after"]
    with psycopg2.connect(database_url(server.url, "fresh")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('employees') IS NOT NULL, to_regclass('ddbsync_rejects') IS NOT NULL")
        assert cursor.fetchone() == (True, True)
