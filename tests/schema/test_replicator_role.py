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
