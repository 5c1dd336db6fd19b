"""The seed 002 walk-through: put Id=2001, change its department, delete it."""

from __future__ import annotations

from decimal import Decimal

from tests.streams import ModelTable


def employees(sql):
    with sql.cursor() as cursor:
        cursor.execute("SELECT id, name, department, _ddb_extras FROM employees ORDER BY id")
        return cursor.fetchall()


def test_insert_update_delete_show_the_seed_states(replicator, sql):
    table = ModelTable("Employees", ("Id",))

    result = replicator.process([table.put({"Id": 2001, "empDepartment": "AnyDept", "empName": "Akua"})])
    assert result.retry_from is None and result.rejected == 0
    assert employees(sql) == [(2001, "Akua", "AnyDept", None)]

    replicator.process([table.update({"Id": 2001}, {"empDepartment": "ExDept"})])
    assert employees(sql) == [(2001, "Akua", "ExDept", None)]

    replicator.process([table.delete({"Id": 2001})])
    assert employees(sql) == []


def test_whole_walk_through_in_one_batch_leaves_nothing(replicator, sql):
    table = ModelTable("Employees", ("Id",))
    batch = [
        table.put({"Id": 2001, "empDepartment": "AnyDept", "empName": "Akua"}),
        table.update({"Id": 2001}, {"empDepartment": "ExDept"}),
        table.delete({"Id": 2001}),
        table.put({"Id": 2002, "empDepartment": "Ops", "empName": "Bo", "badge": Decimal("7")}),
    ]
    result = replicator.process(batch)
    assert result.response() == {"batchItemFailures": []}
    assert employees(sql) == [(2002, "Bo", "Ops", {"badge": 7})]
