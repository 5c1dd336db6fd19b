"""Shared fixtures: a real PostgreSQL server, migrated databases, the mappings.

The suite starts its own server from the machine's PostgreSQL binaries; `DATABASE_URL` points it at
an existing server instead (the suite then creates and drops its own databases there).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.local.postgres import FAST_SETTINGS, PostgresServer
from schema.migrations import upgrade_head
from schema.model import Mappings, load_mappings

ROOT = Path(__file__).resolve().parent.parent


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the same server."""
    base, _, query = server_url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def admin(server_url: str, *statements: str) -> None:
    connection = psycopg2.connect(server_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    connection.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = PostgresServer(settings=FAST_SETTINGS).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_template(pg_server: str) -> Iterator[str]:
    """A database at `alembic upgrade head`, copied for each test that needs one."""
    name = f"ddbsync_template_{uuid.uuid4().hex[:8]}"
    admin(pg_server, f'CREATE DATABASE "{name}"')
    upgrade_head(database_url(pg_server, name))
    yield name
    admin(pg_server, f'DROP DATABASE IF EXISTS "{name}"')


def _fresh_database(pg_server: str, template: str = "template1") -> Iterator[str]:
    name = f"ddbsync_test_{uuid.uuid4().hex[:12]}"
    admin(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield database_url(pg_server, name)
    finally:
        admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    """URL of a new, empty database."""
    yield from _fresh_database(pg_server)


@pytest.fixture
def database(pg_server: str, migrated_template: str) -> Iterator[str]:
    """URL of a new database with every migration applied."""
    yield from _fresh_database(pg_server, migrated_template)


@pytest.fixture(scope="session")
def mappings() -> Mappings:
    return load_mappings()


# The two transports of a batch: one JSON document per table, or COPY into a stage (every batch here).
TRANSPORTS = {"json": 10**9, "copy": 1}


@pytest.fixture(params=sorted(TRANSPORTS))
def copy_threshold(request: pytest.FixtureRequest) -> int:
    """Run the test once per transport."""
    return TRANSPORTS[request.param]


@pytest.fixture
def replicator(database: str, mappings: Mappings, copy_threshold: int) -> Iterator[Replicator]:
    replicator = Replicator(mappings, lambda: connect(database), copy_threshold=copy_threshold)
    yield replicator
    replicator.close()


@pytest.fixture
def sql(database: str) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection for reading what replication wrote."""
    connection = psycopg2.connect(database)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.fixture
def s3() -> Iterator[object]:
    """S3 in moto, in process, with the bucket tests write exports to (`tests.exports.BUCKET`)."""
    import boto3
    from moto import mock_aws

    from tests.exports import BUCKET

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
