"""The migration runner Lambda: upgrades the database named by the owner's secret, over TLS."""

from __future__ import annotations

import importlib
import json
import sys

import psycopg2

from tests.conftest import admin, database_url


def test_migrate_handler_upgrades_to_head_with_the_owner_secret(monkeypatch, aws, tls_server):
    server, _ = tls_server
    admin(server.url, "CREATE DATABASE fresh")
    secret = aws.create_secret(Name="rds!cluster", SecretString=json.dumps({"username": "postgres", "password": "x"}))
    for name, value in {
        "DDBSYNC_DB_SECRET_ARN": secret["ARN"],
        "DDBSYNC_DB_HOST": "127.0.0.1",
        "DDBSYNC_DB_PORT": str(server.port),
        "DDBSYNC_DB_NAME": "fresh",
        "DDBSYNC_DB_SSLROOTCERT": str(server.certificate),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    sys.modules.pop("handlers.migrate", None)
    migrate = importlib.import_module("handlers.migrate")

    first = migrate.handler({"trigger": "abc"}, None)
    again = migrate.handler({"trigger": "abc"}, None)

    assert first["before"] is None and first["after"] == again["before"] == again["after"]
    with psycopg2.connect(database_url(server.url, "fresh")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('employees') IS NOT NULL, to_regclass('ddbsync_rejects') IS NOT NULL")
        assert cursor.fetchone() == (True, True)
