"""Fixtures for the Lambda handlers: a TLS PostgreSQL server and Secrets Manager in moto."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from ddbsync.local.postgres import FAST_SETTINGS, PostgresServer
from schema.migrations import upgrade_head
from tests.conftest import admin, database_url


@pytest.fixture(scope="module")
def tls_server():
    """A PostgreSQL server that speaks TLS with a self-signed certificate, as Aurora does."""
    server = PostgresServer(settings=FAST_SETTINGS, tls=True).start()
    name = "replica"
    admin(server.url, f"CREATE DATABASE {name}")
    upgrade_head(database_url(server.url, name))
    yield server, name
    server.stop()


@pytest.fixture
def aws(monkeypatch):
    """Secrets Manager (and the rest of AWS) in moto, in process."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def iam_login(server, name: str) -> dict[str, str]:
    """The environment the deployed replicator gets: the database user it logs in as with an IAM token."""
    return {
        "DDBSYNC_DB_IAM_USER": "ddbsync_replicator",
        "DDBSYNC_DB_HOST": "127.0.0.1",
        "DDBSYNC_DB_PORT": str(server.port),
        "DDBSYNC_DB_NAME": name,
    }
