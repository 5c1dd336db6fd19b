"""Rejects can be replayed once the mapping takes them, from Python and from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.core.replay import replay_rejects
from schema.model import Mappings, parse_mapping
from tests.conftest import ROOT
from tests.streams import ModelTable


def wider_employees(database: str) -> Replicator:
    """The Employees mapping after its name column was widened (and migrated) to varchar(40)."""
    mapping = parse_mapping(
        {
            "dynamodb_table": "Employees",
            "sql_table": "employees",
            "partition_key": "Id",
            "attributes": {
                "Id": {"type": "N", "column": "id", "sql": "bigint"},
                "empName": {"type": "S", "column": "name", "sql": "varchar(40)"},
                "empDepartment": {"type": "S", "column": "department", "sql": "varchar(10)"},
            },
        }
    )
    return Replicator(Mappings((mapping,)), lambda: connect(database))


def test_replay_applies_what_the_new_mapping_takes_and_marks_it(replicator, sql, database):
    # Given two rejects: a name too long for varchar(20), and one too long even for varchar(40)
    table = ModelTable("Employees", ("Id",))
    replicator.process([table.put({"Id": 1, "empName": "x" * 30}), table.put({"Id": 2, "empName": "y" * 50})])
    with sql.cursor() as cursor:  # what the migration generated for the widened mapping does
        cursor.execute("ALTER TABLE employees ALTER COLUMN name TYPE varchar(40)")

    # When they are replayed through the widened mapping
    widened = wider_employees(database)
    first = replay_rejects(widened)
    again = replay_rejects(widened)
    widened.close()

    # Then the one that fits lands and is marked; the other waits; a second replay does nothing
    assert (first.replayed, first.still_rejected) == (1, 1)
    assert (again.replayed, again.still_rejected) == (0, 1)
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, name FROM employees")
        assert cursor.fetchall() == [(1, "x" * 30)]
        cursor.execute("SELECT count(*) FILTER (WHERE replayed_at IS NULL), count(*) FROM ddbsync_rejects")
        assert cursor.fetchone() == (1, 2)


def test_rejects_list_from_the_command_line(replicator, database):
    table = ModelTable("Employees", ("Id",))
    replicator.process([table.put({"Id": 1, "empName": "x" * 30})])
    result = subprocess.run(
        [sys.executable, "-m", "ddbsync.cli", "rejects", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "1  Employees: attribute 'empName': value of 30 characters exceeds varchar(20)" in result.stdout
    assert result.stdout.strip().endswith("1 pending")


def test_rejects_without_a_database_says_how_to_name_one():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DDBSYNC_DB_SECRET_ARN")}
    result = subprocess.run(
        [sys.executable, "-m", "ddbsync.cli", "rejects", "replay"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "set $DATABASE_URL or $DDBSYNC_DB_SECRET_ARN" in result.stderr
    assert "Traceback" not in result.stderr
