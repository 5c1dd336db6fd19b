"""The replicator's database role can replicate and nothing more; migrations run as the owner."""

from __future__ import annotations

import psycopg2
import pytest

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from tests.streams import ModelTable


def as_replicator(url: str) -> str:
    return url.replace("postgres@", "ddbsync_replicator@", 1)


def test_replicator_role_applies_changes_and_writes_rejects(database, mappings, sql):
    replicator = Replicator(mappings, lambda: connect(as_replicator(database)))
    table = ModelTable("Employees", ("Id",))
    result = replicator.process(
        [
            table.put({"Id": 1, "empName": "Akua"}),
            table.put({"Id": 2, "empName": "x" * 40}),
            table.delete({"Id": 1}),
        ]
    )
    replicator.close()
    assert result.retry_from is None and result.rejected == 1
    with sql.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM ddbsync_tombstones), (SELECT count(*) FROM ddbsync_rejects)")
        assert cursor.fetchone() == (1, 1)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE sneaky (id int)",
        "DROP TABLE employees",
        "ALTER TABLE employees ADD COLUMN x int",
        "TRUNCATE employees",
    ],
)
def test_replicator_role_cannot_change_the_schema(database, statement):
    connection = psycopg2.connect(as_replicator(database))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        connection.cursor().execute(statement)
    connection.close()


def replicator_rights(url: str) -> dict[str, set[str]]:
    """Every table right the replicator role holds in this database, as PostgreSQL reports it."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = 'ddbsync_replicator'"
        )
        rights: dict[str, set[str]] = {}
        for table, privilege in cursor.fetchall():
            rights.setdefault(table, set()).add(privilege)
        return rights


def test_replicator_holds_dml_on_mapped_tables_and_tombstones_and_only_insert_on_rejects(database, mappings):
    dml = {"SELECT", "INSERT", "UPDATE", "DELETE"}
    bookkeeping = {
        "ddbsync_tombstones": dml,
        "ddbsync_rejects": {"INSERT"},
        "ddbsync_exports": {"SELECT", "INSERT", "UPDATE"},
        "ddbsync_export_files": {"SELECT", "INSERT"},
    }
    expected = {m.sql_table: dml for m in mappings.entities} | bookkeeping
    assert replicator_rights(database) == expected
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_default_acl, aclexplode(defaclacl) AS acl "
            "WHERE acl.grantee = 'ddbsync_replicator'::regrole"
        )
        assert cursor.fetchone() == (0,), "no default privileges: a new table is not the replicator's by itself"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ddbsync_rejects SET replayed_at = now()",
        "DELETE FROM ddbsync_rejects",
        "DELETE FROM ddbsync_export_files",
        "SELECT record FROM ddbsync_rejects",
        "SELECT * FROM alembic_version",
        "UPDATE alembic_version SET version_num = 'x'",
        "DELETE FROM alembic_version",
        "SELECT * FROM reporting_cache",
        "INSERT INTO reporting_cache VALUES (1)",
    ],
)
def test_replicator_touches_nothing_but_what_replication_needs(database, statement):
    # Given a table of someone else's, created by the owner after the migrations
    owner = psycopg2.connect(database)
    owner.autocommit = True
    owner.cursor().execute("CREATE TABLE reporting_cache (id int PRIMARY KEY)")
    owner.close()
    connection = psycopg2.connect(as_replicator(database))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        connection.cursor().execute(statement)
    connection.close()


def test_the_schema_owner_owns_ddbsyncs_tables_and_nothing_more(database, mappings):
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        owners = dict(cursor.fetchall())
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'ddbsync_schema_owner'"
        )
        assert cursor.fetchone() == (False, False, False), "no superuser rights, no roles, no databases"
        cursor.execute("CREATE TABLE reporting_cache (id int PRIMARY KEY)")
    bookkeeping = {
        "ddbsync_tombstones",
        "ddbsync_rejects",
        "ddbsync_exports",
        "ddbsync_export_files",
        "alembic_version",
    }
    tables = {m.sql_table for m in mappings.entities} | bookkeeping
    assert owners == {table: "ddbsync_schema_owner" for table in tables}
    connection = psycopg2.connect(database.replace("postgres@", "ddbsync_schema_owner@", 1))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        connection.cursor().execute("SELECT * FROM reporting_cache")
    connection.close()
