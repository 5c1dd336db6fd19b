"""The stream Lambda end to end: configuration at startup, Secrets Manager, TLS, logs and metrics."""

from __future__ import annotations

import importlib
import json
import sys

import psycopg2
import pytest

from ddbsync.core import ConfigurationError
from schema.model import MappingError
from tests.conftest import database_url
from tests.handlers.conftest import iam_login
from tests.streams import ModelTable, event


def load_handler(monkeypatch, **env):
    """Import handlers.stream afresh, as a Lambda cold start does, with this environment."""
    for name in ("DATABASE_URL", "DDBSYNC_DB_SECRET_ARN", "DDBSYNC_STREAM_VIEW_TYPE", "DDBSYNC_MAPPINGS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("handlers.stream", None)
    module = importlib.import_module("handlers.stream")
    return module


@pytest.fixture
def employees_table():
    return ModelTable("Employees", ("Id",))


def rows(url):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, name, department FROM employees ORDER BY id")
        return cursor.fetchall()


def test_handler_applies_a_batch_and_emits_metrics(monkeypatch, database, employees_table, capsys):
    stream = load_handler(monkeypatch, DATABASE_URL=database)
    records = [
        employees_table.put({"Id": 2001, "empDepartment": "AnyDept", "empName": "Akua"}),
        employees_table.put({"Id": 2002, "empName": "x" * 30}),
    ]
    response = stream.handler(event(records), None)
    stream.replicator.close()

    assert response == {"batchItemFailures": []}
    assert rows(database) == [(2001, "Akua", "AnyDept")]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = next(line for line in lines if "_aws" in line)
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ddbsync"
    assert (metrics["RecordsApplied"], metrics["RecordsRejected"]) == ([1.0], [1.0])
    assert metrics["BatchLatency"][0] > 0
    log = next(line for line in lines if line.get("message") == "batch done")
    assert log["rejected"] == 1 and log["upserted"] == 1


def test_keys_only_stream_fails_at_startup(monkeypatch, database):
    with pytest.raises(ConfigurationError, match="KEYS_ONLY carries no new image"):
        load_handler(monkeypatch, DATABASE_URL=database, DDBSYNC_STREAM_VIEW_TYPE="KEYS_ONLY")


def test_broken_mapping_fails_at_startup_naming_the_attribute(monkeypatch, tmp_path, database):
    (tmp_path / "orders.toml").write_text(
        'dynamodb_table = "Orders"\npartition_key = "pk"\n[attributes]\n'
        'pk = "S"\ntotal = { type = "N", sql = "text" }\n'
    )
    with pytest.raises(MappingError, match=r"mapping Orders\.total: a N attribute cannot be stored as text"):
        load_handler(monkeypatch, DATABASE_URL=database, DDBSYNC_MAPPINGS=str(tmp_path))


def test_credentials_come_from_secrets_manager_over_verified_tls(monkeypatch, aws, tls_server, employees_table):
    server, name = tls_server
    secret = aws.create_secret(
        Name="ddbsync/replicator",
        SecretString=json.dumps(
            {"username": "postgres", "password": "unused", "host": "127.0.0.1", "port": server.port, "dbname": name}
        ),
    )
    stream = load_handler(
        monkeypatch, DDBSYNC_DB_SECRET_ARN=secret["ARN"], DDBSYNC_DB_SSLROOTCERT=str(server.certificate)
    )
    first = stream.handler(event([employees_table.put({"Id": 1, "empName": "tls"})]), None)
    assert first == {"batchItemFailures": []}
    with stream.replicator.connection().cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cursor.fetchone() == (True,), "the replicator talks TLS"

    # The secret is cached across invocations: a new connection needs no new Secrets Manager call.
    aws.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    stream.replicator.close()
    second = stream.handler(event([employees_table.put({"Id": 2, "empName": "cached"})]), None)
    stream.replicator.close()
    assert second == {"batchItemFailures": []}
    assert rows(database_url(server.url, name)) == [(1, "tls", None), (2, "cached", None)]


def test_iam_authentication_connects_as_the_replicator_role_over_tls(monkeypatch, aws, tls_server, employees_table):
    server, name = tls_server
    stream = load_handler(monkeypatch, **iam_login(server, name), DDBSYNC_DB_SSLROOTCERT=str(server.certificate))
    response = stream.handler(event([employees_table.put({"Id": 7, "empName": "iam"})]), None)
    with stream.replicator.connection().cursor() as cursor:
        cursor.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
        assert cursor.fetchone() == ("ddbsync_replicator", True)
    stream.replicator.close()
    assert response == {"batchItemFailures": []}
    assert (7, "iam", None) in rows(database_url(server.url, name))


def test_a_server_without_tls_is_refused_and_the_batch_retried(monkeypatch, aws, pg_server, employees_table):
    host_port = pg_server.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    secret = aws.create_secret(
        Name="ddbsync/plain",
        SecretString=json.dumps({"username": "postgres", "password": "x", "host": host, "port": port}),
    )
    stream = load_handler(monkeypatch, DDBSYNC_DB_SECRET_ARN=secret["ARN"])
    record = employees_table.put({"Id": 1})
    response = stream.handler(event([record]), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
