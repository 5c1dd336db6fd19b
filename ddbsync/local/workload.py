"""Generated DynamoDB writes for the demo, the tests and the benchmarks: seed 002's Employees and the Shop.

Each write is a function of a DynamoDB client, decided in advance from a seeded random generator,
so a run can be replayed and several writers can share one plan. Now and then a value the mapping
cannot take is written on purpose: the demo shows it landing in the rejects table, nothing lost.
"""

from __future__ import annotations

import random
from typing import Any, Callable

Write = Callable[[Any], Any]

DEPARTMENTS = ["AnyDept", "ExDept", "Ops", "Sales", "Finance"]
NAMES = ["Akua", "Bo", "Chen", "Dara", "Émile", "Farah", "Gus", "Hana", "Ines", "Jon"]
CITIES = ["Accra", "Lyon", "Osaka", "Lima", "Oslo"]
STATUSES = ["placed", "paid", "shipped", "delivered"]


def seed_walk_through() -> list[tuple[str, Write]]:
    """Seed 002's three AWS CLI steps, as the same DynamoDB requests."""
    return [
        (
            "put-item Id=2001 (empName Akua, empDepartment AnyDept)",
            lambda db: db.put_item(
                TableName="Employees",
                Item={"Id": {"N": "2001"}, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}},
            ),
        ),
        (
            "update-item Id=2001 SET empDepartment = ExDept",
            lambda db: db.update_item(
                TableName="Employees",
                Key={"Id": {"N": "2001"}},
                UpdateExpression="SET empDepartment = :newval",
                ExpressionAttributeValues={":newval": {"S": "ExDept"}},
            ),
        ),
        ("delete-item Id=2001", lambda db: db.delete_item(TableName="Employees", Key={"Id": {"N": "2001"}})),
    ]


def employee_writes(count: int, rng: random.Random) -> list[Write]:
    """Puts, updates and deletes over a few hundred employees, with the odd name too long to fit."""
    writes: list[Write] = []
    for _ in range(count):
        key = {"Id": {"N": str(rng.randrange(1, 600))}}
        roll = rng.random()
        if roll < 0.6:
            name = rng.choice(NAMES) if rng.random() > 0.01 else "A name far too long for varchar(20)"
            item = {**key, "empName": {"S": name}, "empDepartment": {"S": rng.choice(DEPARTMENTS)}}
            if rng.random() < 0.2:
                item["empLevel"] = {"N": str(rng.randrange(1, 9))}  # not mapped: lands in _ddb_extras
            writes.append(_put("Employees", item))
        elif roll < 0.85:
            writes.append(_update("Employees", key, "empDepartment", {"S": rng.choice(DEPARTMENTS)}))
        else:
            writes.append(_delete("Employees", key))
    return writes


def shop_writes(count: int, rng: random.Random) -> list[Write]:
    """Customers and their orders in the single-table `Shop`, with the odd item no entity takes."""
    writes: list[Write] = []
    for _ in range(count):
        customer = f"c{rng.randrange(1, 80)}"
        pk = {"S": f"CUSTOMER#{customer}"}
        roll = rng.random()
        if roll < 0.3:
            item: dict[str, Any] = {"PK": pk, "SK": {"S": "PROFILE"}, "name": {"S": rng.choice(NAMES)}}
            item["email"] = {"S": f"{customer}@example.com"}
            item["createdAt"] = {"S": f"2026-0{rng.randrange(1, 10)}-1{rng.randrange(0, 10)}T08:30:00Z"}
            if rng.random() < 0.8:  # a customer without an address has no city
                address = {"street": {"S": "1 Main St"}, "city": {"S": rng.choice(CITIES)}}
                item["address"] = {"M": {**address, "zip": {"S": f"{rng.randrange(10000, 99999)}"}}}
            writes.append(_put("Shop", item))
        elif roll < 0.75:
            order = f"o{rng.randrange(1, 30)}" + ("#gift" if rng.random() < 0.1 else "")  # ids may hold '#'
            key = {"PK": pk, "SK": {"S": f"ORDER#{order}"}}
            if rng.random() < 0.7:
                lines = [{"M": {"sku": {"S": f"sku-{rng.randrange(100)}"}, "qty": {"N": str(rng.randrange(1, 4))}}}]
                item = {
                    **key,
                    "status": {"S": "placed"},
                    "total": {"N": f"{rng.randrange(100, 99999) / 100:.2f}"},
                    "placedAt": {"S": "2026-11-25T09:00:00+01:00"},
                    "lines": {"L": lines},
                }
                writes.append(_put("Shop", item))
            else:
                writes.append(_update("Shop", key, "status", {"S": rng.choice(STATUSES)}))
        elif roll < 0.95:
            writes.append(_delete("Shop", {"PK": pk, "SK": {"S": f"ORDER#o{rng.randrange(1, 30)}"}}))
        else:  # an item no entity of the mapping takes: rejected with the reason, kept whole
            writes.append(_put("Shop", {"PK": pk, "SK": {"S": f"REVIEW#{rng.randrange(100)}"}}))
    return writes


def mixed_writes(count: int, rng: random.Random) -> list[Write]:
    """Employees and Shop writes interleaved: two thirds Employees."""
    employees, shop = employee_writes(count - count // 3, rng), shop_writes(count // 3, rng)
    writes = employees + shop
    rng.shuffle(writes)
    return writes


def _put(table: str, item: dict[str, Any]) -> Write:
    return lambda db: db.put_item(TableName=table, Item=item)


def _update(table: str, key: dict[str, Any], attribute: str, value: dict[str, Any]) -> Write:
    return lambda db: db.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": value},
    )


def _delete(table: str, key: dict[str, Any]) -> Write:
    return lambda db: db.delete_item(TableName=table, Key=key)
