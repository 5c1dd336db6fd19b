"""An outage waits, bad data rejects: the error's SQLSTATE class decides, and waiting ends in time."""

from __future__ import annotations

import logging
import time

import psycopg2
import pytest

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from ddbsync.core.errors import ErrorKind, error_kind
from ddbsync.local.postgres import free_port
from tests.core.test_batch_contract import employees, rejects
from tests.streams import ModelTable


@pytest.fixture
def table() -> ModelTable:
    return ModelTable("Employees", ("Id",))


class FlakyDatabase:
    """Connections are refused (nothing listens on the port) the first `refusals` times, then succeed."""

    def __init__(self, url: str, refusals: int) -> None:
        self.url, self.refusals, self.attempts = url, refusals, 0

    def __call__(self) -> psycopg2.extensions.connection:
        self.attempts += 1
        if self.attempts <= self.refusals:
            return connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
        return connect(self.url)


def raising_trigger(sql, sqlstate: str) -> None:
    with sql.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END$$;"
            "CREATE TRIGGER fail BEFORE INSERT ON employees FOR EACH ROW EXECUTE FUNCTION fail()"
        )


def test_a_batch_waits_for_the_database_within_its_deadline(database, mappings, sql, table, caplog):
    flaky = FlakyDatabase(database, refusals=3)
    replicator = Replicator(mappings, flaky)
    batch = [table.put({"Id": 1, "empName": "a"}), table.put({"Id": 2, "empName": "b"})]
    with caplog.at_level(logging.WARNING, logger="ddbsync.core.batch"):
        result = replicator.process(batch, deadline=time.monotonic() + 30)
    replicator.close()
    assert result.response() == {"batchItemFailures": []}
    assert result.attempts == 4 and flaky.attempts == 4
    assert employees(sql) == [(1, "a", None), (2, "b", None)]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, "one line when the database goes, one when it is back; not one per attempt"
    assert messages[0].startswith("database unavailable, waiting for it") and "back after" in messages[1]


def test_waiting_ends_before_the_deadline_and_hands_the_batch_back(database, mappings, sql, table):
    replicator = Replicator(mappings, FlakyDatabase(database, refusals=1000))
    batch = [table.put({"Id": 1, "empName": "a"})]
    started = time.monotonic()
    result = replicator.process(batch, deadline=started + 1.5)
    assert time.monotonic() - started < 1.5
    assert result.attempts > 1
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]}
    assert employees(sql) == [] and rejects(sql) == []


def test_without_a_deadline_the_batch_is_tried_once(database, mappings, table):
    flaky = FlakyDatabase(database, refusals=1)
    result = Replicator(mappings, flaky).process([table.put({"Id": 1})])
    assert result.retry_from is not None and flaky.attempts == 1


@pytest.mark.parametrize(
    "sqlstate, kind",
    [
        ("40001", ErrorKind.WAIT),  # serialization failure
        ("40P01", ErrorKind.WAIT),  # deadlock
        ("53300", ErrorKind.WAIT),  # too many connections
        ("57014", ErrorKind.WAIT),  # query canceled (statement timeout)
        ("54000", ErrorKind.DATA),  # program limit: psycopg2 raises it as an OperationalError
        ("22003", ErrorKind.DATA),  # numeric value out of range
        ("23514", ErrorKind.DATA),  # check violation
        ("42501", ErrorKind.OTHER),  # insufficient privilege: a deployment to fix, not data
    ],
)
def test_the_sqlstate_class_decides_what_an_error_is(sql, sqlstate, kind):
    with sql.cursor() as cursor, pytest.raises(psycopg2.Error) as raised:
        cursor.execute(f"DO $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{sqlstate}'; END$$")
    assert error_kind(raised.value) is kind


def test_a_program_limit_rejects_the_record_instead_of_waiting(replicator, sql, table):
    raising_trigger(sql, "54000")
    batch = [table.put({"Id": 1, "empName": "too big"})]
    result = replicator.process(batch, deadline=time.monotonic() + 30)
    assert result.response() == {"batchItemFailures": []} and result.rejected == 1 and result.attempts == 1
    ((_, _, _, reason, _),) = rejects(sql)
    assert reason == "database refused the row: 54000 refused"


def test_a_serialization_failure_waits_and_never_rejects(replicator, sql, table):
    raising_trigger(sql, "40001")
    result = replicator.process([table.put({"Id": 1})], deadline=time.monotonic() + 1)
    assert result.retry_from is not None and result.attempts > 1
    assert rejects(sql) == []
