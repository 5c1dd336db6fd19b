"""Convergence: whatever the delivery history, PostgreSQL ends equal to DynamoDB through the mapping.

Random histories of puts, updates and deletes are delivered the way Lambda's event source mapping
may deliver them: in batches of random size, with duplicates of earlier records, again from the
reported record after a failure (here a real lost connection), replayed from an older checkpoint,
and with stale batches arriving after everything else.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.streams import ModelTable

KEYS = st.integers(min_value=1, max_value=6)
NAMES = st.sampled_from(["Akua", "Bo", "Chen", "Dara", "Émile", ""])
DEPARTMENTS = st.sampled_from(["AnyDept", "ExDept", "Ops", None])

put = st.builds(
    lambda i, name, dept, level: (
        "put",
        {
            "Id": i,
            "empName": name,
            **({"empDepartment": dept} if dept else {}),
            **({"level": level} if level is not None else {}),
        },
    ),
    KEYS,
    NAMES,
    DEPARTMENTS,
    st.one_of(st.none(), st.integers(-5, 5)),
)
update = st.builds(lambda i, dept: ("update", {"Id": i}, {"empDepartment": dept}), KEYS, DEPARTMENTS)
delete = st.builds(lambda i: ("delete", {"Id": i}), KEYS)
histories = st.lists(st.one_of(put, update, delete), min_size=1, max_size=40)


def history_records(operations) -> tuple[ModelTable, list[dict]]:
    table = ModelTable("Employees", ("Id",))
    records = []
    for operation in operations:
        kind, *args = operation
        record = getattr(table, kind)(*args)
        if record is not None:
            records.append(record)
    return table, records


def expected_rows(table: ModelTable) -> list[tuple]:
    rows = []
    for item in table.items.values():
        extras = {k: v for k, v in item.items() if k not in ("Id", "empName", "empDepartment")}
        rows.append((item["Id"], item.get("empName"), item.get("empDepartment"), extras or None))
    return sorted(rows)


def actual_rows(sql) -> list[tuple]:
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, name, department, _ddb_extras FROM employees ORDER BY id")
        return cursor.fetchall()


def kill_connection(replicator, sql) -> None:
    """Terminate the replicator's server process and wait until it is gone."""
    pid = replicator.connection().get_backend_pid()
    with sql.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(500):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if cursor.fetchone() == (0,):
                return
            time.sleep(0.002)
    raise AssertionError("the server process did not end")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=histories, delivery=st.data())
def test_any_delivery_history_converges(replicator, sql, operations, delivery):
    with sql.cursor() as cursor:
        cursor.execute("TRUNCATE employees, ddbsync_tombstones, ddbsync_rejects")
    table, records = history_records(operations)

    # Failures and replays are bounded, as the event source mapping's retries are, so delivery ends.
    position, failures, replays = 0, 0, 0
    while position < len(records):
        size = delivery.draw(st.integers(1, 10), label="batch size")
        batch = records[position : position + size]
        delivered = len(batch)
        if position and delivery.draw(st.integers(0, 3), label="duplicates") == 0:
            # Duplicates of earlier records, out of order, inside a batch.
            batch = batch + delivery.draw(st.lists(st.sampled_from(records[:position]), max_size=5), label="duplicated")
        lose_connection = failures < 3 and delivery.draw(st.integers(0, 9), label="lose connection") == 0
        if lose_connection:
            failures += 1
            kill_connection(replicator, sql)
        result = replicator.process(batch)
        assert result.rejected == 0
        assert (result.retry_from is not None) == lose_connection
        if lose_connection:
            # Lambda checkpoints at the reported record and delivers from there again.
            position = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == result.retry_from)
            continue
        position += delivered
        if replays < 3 and delivery.draw(st.integers(0, 4), label="replay") == 0:
            replays += 1
            position = delivery.draw(st.integers(0, position), label="replay from")

    # Late stale deliveries after everything (a replayed old batch) change nothing.
    late = st.lists(st.lists(st.sampled_from(records), min_size=1, max_size=5), max_size=3) if records else st.just([])
    for stale in delivery.draw(late, label="late"):
        assert replicator.process(stale).retry_from is None
    assert actual_rows(sql) == expected_rows(table)
