"""Generated migrations: mapping, migrations and the live database agree, and evolve together."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.core.version import stream_version
from schema.model import load_mappings
from tests.conftest import ROOT
from tests.streams import ModelTable


def alembic(cwd: Path, url: str, *args: str, mappings: Path | None = None) -> subprocess.CompletedProcess:
    """Run the `alembic` command as a user would, with the URL form users pass."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DDBSYNC_MAPPINGS", None)
    if mappings is not None:
        env["DDBSYNC_MAPPINGS"] = str(mappings)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def columns(url: str, table: str) -> list[tuple[str, str]]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return cursor.fetchall()


def test_upgrade_head_then_check_is_clean(empty_database):
    upgrade = alembic(ROOT, empty_database, "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    check = alembic(ROOT, empty_database, "check")
    assert check.returncode == 0, f"mapping and migrations disagree:\n{check.stdout}{check.stderr}"
    assert columns(empty_database, "employees") == [
        ("id", "bigint"),
        ("name", "character varying"),
        ("department", "character varying"),
        ("_ddb_extras", "jsonb"),
        ("_ddb_version", "numeric"),
        ("_ddb_synced_at", "timestamp with time zone"),
    ]


def test_check_fails_when_the_database_lags_the_mapping(empty_database):
    assert alembic(ROOT, empty_database, "check").returncode != 0


def test_new_attribute_becomes_exactly_one_add_column_and_fills(tmp_path, empty_database):
    # Given a copy of the project's schema and a mapping with one more attribute
    shutil.copy(ROOT / "alembic.ini", tmp_path)
    shutil.copytree(ROOT / "schema", tmp_path / "schema", ignore=shutil.ignore_patterns("__pycache__"))
    mappings = tmp_path / "schema" / "mappings"
    employees = mappings / "employees.toml"
    employees.write_text(employees.read_text() + 'empEmail = { type = "S", column = "email", sql = "varchar(80)" }\n')
    assert alembic(tmp_path, empty_database, "upgrade", "head", mappings=mappings).returncode == 0

    # When autogenerate runs
    revision = alembic(tmp_path, empty_database, "revision", "--autogenerate", "-m", "add email", mappings=mappings)
    assert revision.returncode == 0, revision.stderr

    # Then it wrote one migration holding exactly one add_column
    (generated,) = (tmp_path / "schema" / "versions").glob("*add_email.py")
    upgrade_body = generated.read_text().split("def upgrade()")[1].split("def downgrade()")[0]
    operations = re.findall(r"op\.\w+\(", upgrade_body)
    assert operations == ["op.add_column("], upgrade_body
    assert "'employees', sa.Column('email', sa.VARCHAR(length=80)" in upgrade_body

    # And after upgrading, new stream records fill the new column
    assert alembic(tmp_path, empty_database, "upgrade", "head", mappings=mappings).returncode == 0
    assert alembic(tmp_path, empty_database, "check", mappings=mappings).returncode == 0
    replicator = Replicator(load_mappings(mappings), lambda: connect(empty_database))
    table = ModelTable("Employees", ("Id",))
    replicator.process([table.put({"Id": 7, "empName": "Ana", "empEmail": "ana@example.com"})])
    replicator.close()
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, email, _ddb_extras FROM employees")
        assert cursor.fetchall() == [(7, "ana@example.com", None)]


def test_autogenerate_with_nothing_to_do_writes_no_file(tmp_path, empty_database):
    shutil.copy(ROOT / "alembic.ini", tmp_path)
    shutil.copytree(ROOT / "schema", tmp_path / "schema", ignore=shutil.ignore_patterns("__pycache__"))
    assert alembic(tmp_path, empty_database, "upgrade", "head").returncode == 0
    before = sorted((tmp_path / "schema" / "versions").glob("*.py"))
    assert alembic(tmp_path, empty_database, "revision", "--autogenerate", "-m", "nothing").returncode == 0
    assert sorted((tmp_path / "schema" / "versions").glob("*.py")) == before


def test_tables_ddbsync_does_not_own_are_left_alone(empty_database):
    assert alembic(ROOT, empty_database, "upgrade", "head").returncode == 0
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE reporting_cache (id int PRIMARY KEY)")
    check = alembic(ROOT, empty_database, "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_upgrading_turns_tombstone_keys_into_digests_and_identifies_pending_rejects(empty_database):
    # Given a database at the revision before, holding a tombstone and a pending reject of item 1
    assert alembic(ROOT, empty_database, "upgrade", "5b1f0c2a7d10").returncode == 0
    record = ModelTable("Employees", ("Id",)).put({"Id": 1, "empName": "x" * 30})
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO ddbsync_tombstones (table_name, item_key, version) VALUES ('employees', '1', 5)")
        cursor.execute(
            "INSERT INTO ddbsync_rejects (dynamodb_table, reason, record) VALUES ('Employees', 'too long', %s)",
            (json.dumps(record),),
        )
    connection.close()
    # When it is upgraded
    upgraded = alembic(ROOT, empty_database, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    # Then the tombstone is found under the key the replicator computes, and the reject names its item
    digest = hashlib.sha256(b"1").hexdigest()
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT item_key FROM ddbsync_tombstones")
        assert cursor.fetchall() == [(digest,)]
        cursor.execute("SELECT sql_table, item_key, version IS NOT NULL FROM ddbsync_rejects")
        assert cursor.fetchall() == [("employees", digest, True)]
    connection.close()


def test_a_table_a_new_mapping_adds_is_the_replicators_after_its_generated_migration(tmp_path, empty_database):
    # Given the project at head and a new mapping
    shutil.copy(ROOT / "alembic.ini", tmp_path)
    shutil.copytree(ROOT / "schema", tmp_path / "schema", ignore=shutil.ignore_patterns("__pycache__"))
    mappings = tmp_path / "schema" / "mappings"
    assert alembic(tmp_path, empty_database, "upgrade", "head", mappings=mappings).returncode == 0
    (mappings / "orders.toml").write_text(
        'dynamodb_table = "Orders"\npartition_key = "orderId"\n[attributes]\norderId = { type = "S" }\n'
    )

    # When autogenerate writes its migration and the schema owner, as the deploy does, applies it
    revision = alembic(tmp_path, empty_database, "revision", "--autogenerate", "-m", "orders", mappings=mappings)
    assert revision.returncode == 0, revision.stderr
    (generated,) = (tmp_path / "schema" / "versions").glob("*_orders.py")
    upgrade_body = generated.read_text().split("def upgrade()")[1].split("def downgrade()")[0]
    assert "op.execute('GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO ddbsync_replicator')" in upgrade_body
    as_schema_owner = empty_database.replace("postgres@", "ddbsync_schema_owner@", 1)
    upgrade = alembic(tmp_path, as_schema_owner, "upgrade", "head", mappings=mappings)
    assert upgrade.returncode == 0, upgrade.stderr

    # Then the replicator, connected as its own role, writes the new table
    as_replicator = empty_database.replace("postgres@", "ddbsync_replicator@", 1)
    replicator = Replicator(load_mappings(mappings), lambda: connect(as_replicator))
    result = replicator.process([ModelTable("Orders", ("orderId",)).put({"orderId": "o-1", "note": "kept"})])
    replicator.close()
    assert result.retry_from is None and result.rejected == 0
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT order_id, _ddb_extras FROM orders")
        assert cursor.fetchall() == [("o-1", {"note": "kept"})]


def test_upgrading_moves_stored_versions_to_microseconds_keeping_which_change_wins(empty_database):
    # Given a database at the revision before, with rows, a tombstone and a reject versioned the old
    # way (second x 10^40 + sequence number), one row loaded from a snapshot just below second 2000
    assert alembic(ROOT, empty_database, "upgrade", "4de93d30718f").returncode == 0
    old = {1: 1000 * 10**40 + 500, 2: 2000 * 10**40 - 1}
    new_code = stream_version({"ApproximateCreationDateTime": 3000, "SequenceNumber": "9"})
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        for item, version in {**old, 3: new_code}.items():  # 3: written by the new code before the migration ran
            cursor.execute("INSERT INTO employees (id, name, _ddb_version) VALUES (%s, 'before', %s)", (item, version))
        # and a user's views over the table: one PostgreSQL would update through, one it cannot
        cursor.execute("CREATE VIEW all_employees AS SELECT * FROM employees")
        cursor.execute("CREATE VIEW versions AS SELECT max(_ddb_version) AS _ddb_version FROM employees")
        cursor.execute(
            "INSERT INTO ddbsync_tombstones (table_name, item_key, version) VALUES ('employees', 'k', %s)",
            (1500 * 10**40 + 7,),
        )
    connection.close()
    # When it is upgraded
    upgraded = alembic(ROOT, empty_database, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    # Then stored versions read as the stream records they came from, each rescaled once ...
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT version FROM ddbsync_tombstones")
        assert cursor.fetchone()[0] == stream_version({"ApproximateCreationDateTime": 1500, "SequenceNumber": "7"})
        cursor.execute("SELECT _ddb_version FROM employees WHERE id IN (1, 3) ORDER BY id")
        assert [v for (v,) in cursor.fetchall()] == [
            stream_version({"ApproximateCreationDateTime": 1000, "SequenceNumber": "500"}),
            new_code,
        ]
    connection.close()
    # ... and a stream record decides against them as it did before: of second 1000, an older
    # sequence number loses and a newer one wins; any record of second 2000 beats the snapshot row
    table = ModelTable("Employees", ("Id",))
    replicator = Replicator(load_mappings(), lambda: connect(empty_database))
    records = []
    for item, second, sequence, name in [(1, 1000, 400, "older"), (1, 1000, 600, "newer"), (2, 2000, 1, "stream")]:
        record = table.put({"Id": item, "empName": name})
        record["dynamodb"].update(ApproximateCreationDateTime=second, SequenceNumber=str(sequence))
        records.append(record)
    outcome = [replicator.process([record]).counts.upserted for record in records]
    replicator.close()
    assert outcome == [0, 1, 1]
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, name FROM employees ORDER BY id")
        assert cursor.fetchall() == [(1, "newer"), (2, "stream"), (3, "before")]
    connection.close()


def test_the_replicator_compares_right_against_versions_not_yet_migrated(empty_database):
    # Given rows on the old scale (the new code deployed, the migration not run yet)
    assert alembic(ROOT, empty_database, "upgrade", "4de93d30718f").returncode == 0
    with psycopg2.connect(empty_database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO employees (id, name, _ddb_version) VALUES (1, 'stored', %s)", (1000 * 10**40 + 500,)
        )
        cursor.execute(
            "INSERT INTO ddbsync_tombstones (table_name, item_key, version) VALUES ('employees', %s, %s)",
            (hashlib.sha256(b"2").hexdigest(), 1000 * 10**40 + 500),
        )
    connection.close()
    # When records of the same second, older and newer, arrive
    table = ModelTable("Employees", ("Id",))
    replicator = Replicator(load_mappings(), lambda: connect(empty_database))
    outcome = []
    for item, sequence, name in [(1, 400, "older"), (2, 400, "older"), (1, 600, "newer"), (2, 600, "newer")]:
        record = table.put({"Id": item, "empName": name})
        record["dynamodb"].update(ApproximateCreationDateTime=1000, SequenceNumber=str(sequence))
        outcome.append(replicator.process([record]).counts.upserted)
    replicator.close()
    # Then the older ones lose to the stored row and tombstone, the newer ones win
    assert outcome == [0, 0, 1, 1]
