"""Single-table design: the Shop example's customers and orders land in their own tables, by the one decode."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, create_engine

from ddbsync.core import Replicator
from ddbsync.core.connection import connect
from schema.database import sqlalchemy_url
from schema.metadata import mapped_table
from schema.model import Mappings, parse_mapping
from tests.core.test_batch_contract import rejects
from tests.streams import ModelTable, raw_record


@pytest.fixture
def shop() -> ModelTable:
    return ModelTable("Shop", ("PK", "SK"))


def rows(sql, query: str) -> list[tuple]:
    with sql.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def customer(customer_id: str, **attributes) -> dict:
    return {"PK": f"CUSTOMER#{customer_id}", "SK": "PROFILE", **attributes}


def order(customer_id: str, order_id: str, **attributes) -> dict:
    return {"PK": f"CUSTOMER#{customer_id}", "SK": f"ORDER#{order_id}", **attributes}


def test_customers_and_orders_land_in_their_tables_with_their_columns(replicator, sql, shop):
    address = {"street": "1 Main St", "city": "Lyon", "zip": "69001"}
    result = replicator.process(
        [
            shop.put(
                customer("42", name="Ada", email="ada@example.com", address=address, createdAt="2026-05-01T10:00:00")
            ),
            shop.put(
                order(
                    "42",
                    "7",
                    status="paid",
                    total=Decimal("123.40"),
                    placedAt="2026-05-02T12:00:00+02:00",
                    lines=[{"sku": "a", "qty": Decimal(2)}],
                )
            ),
        ]
    )
    assert result.rejected == 0 and result.counts.upserted == 2
    assert rows(sql, "SELECT customer_id, name, email, city, zip, created_at, _ddb_extras FROM shop_customers") == [
        (
            "42",
            "Ada",
            "ada@example.com",
            "Lyon",
            "69001",
            datetime(2026, 5, 1, 10, tzinfo=timezone.utc),
            {"address": {"street": "1 Main St", "city": "Lyon", "zip": "69001"}},
        )
    ]  # no offset is UTC; the address map stays whole in the extras, so the item can be rebuilt
    ((customer_id, order_id, status, total, placed_at, lines),) = rows(
        sql, "SELECT customer_id, order_id, status, total, placed_at, lines FROM shop_orders"
    )
    assert (customer_id, order_id, status, total) == ("42", "7", "paid", Decimal("123.40"))
    assert placed_at == datetime(2026, 5, 2, 10, tzinfo=timezone.utc)
    assert lines == [{"sku": "a", "qty": 2}]


def test_a_customer_without_an_address_has_no_city(replicator, sql, shop):
    replicator.process([shop.put(customer("1", name="Bo"))])
    assert rows(sql, "SELECT customer_id, city, zip FROM shop_customers") == [("1", None, None)]


def test_items_no_entity_takes_and_keys_off_the_template_are_rejected_with_why(replicator, sql, shop):
    result = replicator.process(
        [
            shop.put({"PK": "CUSTOMER#1", "SK": "REVIEW#9", "stars": Decimal(5)}),
            shop.put({"PK": "USER#1", "SK": "PROFILE", "name": "Bo"}),
            shop.put(customer("2", name="ok")),
        ]
    )
    assert result.rejected == 2 and rows(sql, "SELECT customer_id FROM shop_customers") == [("2",)]
    reasons = [reason for _, _, _, reason, _ in rejects(sql)]
    assert reasons[0].startswith("no entity of Shop matches the item (PK = 'CUSTOMER#1', SK = 'REVIEW#9')")
    assert "customer: SK = 'PROFILE'; order: SK starts with 'ORDER#'" in reasons[0]
    assert reasons[1] == (
        "key PK = 'USER#1' does not fit the template 'CUSTOMER#{customer_id}' of customer (shop_customers)"
    )


def test_order_ids_holding_a_hash_round_trip_and_a_keys_only_remove_finds_the_row(database, mappings, sql):
    shop = ModelTable("Shop", ("PK", "SK"), view_type="NEW_IMAGE")  # REMOVE carries the key alone
    replicator = Replicator(mappings, lambda: connect(database))
    replicator.process([shop.put(order("9", "2026#A#1", status="placed")), shop.put(order("9", "2026#A#2"))])
    assert rows(sql, "SELECT order_id FROM shop_orders ORDER BY 1") == [("2026#A#1",), ("2026#A#2",)]
    template = mappings.for_sql_table("shop_orders").templates[1]
    assert template.build({"order_id": "2026#A#1"}) == "ORDER#2026#A#1"
    replicator.process([shop.delete({"PK": "CUSTOMER#9", "SK": "ORDER#2026#A#1"})])
    replicator.close()
    assert rows(sql, "SELECT order_id FROM shop_orders") == [("2026#A#2",)]


def test_a_timestamp_that_does_not_parse_and_a_path_through_a_non_map_are_rejected(replicator, sql, shop):
    result = replicator.process(
        [shop.put(customer("1", createdAt="next tuesday")), shop.put(customer("2", address="Lyon"))]
    )
    assert result.rejected == 2
    reasons = [reason for _, _, _, reason, _ in rejects(sql)]
    assert reasons == [
        "attribute 'createdAt': 'next tuesday' is not an ISO 8601 date and time",
        "path 'address.city': address is S, not a map",
    ]


def test_epoch_seconds_land_in_a_timestamptz_column(database, sql):
    (source, table) = entity_mapping(
        database,
        {
            "dynamodb_table": "Sessions",
            "partition_key": "id",
            "attributes": {"id": "S", "expiresAt": {"type": "N", "sql": "timestamptz"}},
        },
    )
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    record = raw_record("Sessions", "INSERT", {"id": {"S": "s"}}, {"id": {"S": "s"}, "expiresAt": {"N": "1795000000"}})
    assert replicator.process([record]).rejected == 0
    replicator.close()
    assert rows(sql, f"SELECT expires_at FROM {table.sql_table}") == [
        (datetime.fromtimestamp(1795000000, timezone.utc),)
    ]


def entity_mapping(database: str, declaration: dict):
    """Parse a mapping and create its tables, as its generated migration would."""
    source = parse_mapping(declaration)
    engine = create_engine(sqlalchemy_url(database))
    metadata = MetaData()
    for entity in source.entities:
        mapped_table(metadata, entity)
    metadata.create_all(engine)
    engine.dispose()
    return source, source.entities[0]


NUMBERED = {
    "dynamodb_table": "Tickets",
    "partition_key": "PK",
    "key_types": {"PK": "S"},
    "entities": [
        {
            "name": "ticket",
            "sql_table": "tickets",
            "match": {"PK": {"prefix": "TICKET#"}},
            "keys": {"PK": "TICKET#{number}"},
            "key_columns": {"number": "bigint"},
        }
    ],
}


def test_a_number_placeholder_takes_only_what_comes_back_the_same(database, sql):
    source, _ = entity_mapping(database, NUMBERED)
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    tickets = ModelTable("Tickets", ("PK",))
    result = replicator.process([tickets.put({"PK": "TICKET#12"}), tickets.put({"PK": "TICKET#007"})])
    replicator.close()
    assert result.rejected == 1
    assert rows(sql, "SELECT number FROM tickets") == [(12,)]
    ((_, _, _, reason, _),) = rejects(sql)
    assert (
        reason
        == "key part number = '007' of ticket (tickets) would come back as 7: the key could not be rebuilt from the row"
    )


# Things move between two tables by their `state` attribute: a move is a delete from one and an insert
# into the other, in one transaction, version-guarded like everything else. An archived thing belongs
# to no entity: it leaves its table and is ignored.
def moving_mapping(**settings) -> dict:
    """Things told apart by their `state`: open ones in one table, closed ones in another."""
    return {
        "dynamodb_table": "Things",
        "partition_key": "id",
        "key_types": {"id": "S"},
        **settings,
        "entities": [
            {
                "name": state,
                "sql_table": f"{state}_things",
                "match": {"state": state},
                "keys": {"id": "T#{id}"},
                "key_columns": {"id": "text"},
                "attributes": {"size": "N"},
            }
            for state in ("open", "closed")
        ],
    }


MOVING = moving_mapping(unmatched="ignore")  # an archived thing is in no table
moves = st.lists(
    st.one_of(
        st.builds(
            lambda k, s, n: ("put", {"id": f"T#{k}", "state": s, "size": n}),
            st.integers(1, 3),
            st.sampled_from(["open", "closed", "archived"]),
            st.integers(0, 9),
        ),
        st.builds(lambda k: ("delete", {"id": f"T#{k}"}), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=moves, view=st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_IMAGE"]), order=st.randoms(use_true_random=False)
)
def test_moves_between_entities_converge_under_replays_and_any_order(database, sql, operations, view, order):
    source, _ = entity_mapping(database, MOVING)  # creates the tables once: create_all checks first
    with sql.cursor() as cursor:
        cursor.execute("TRUNCATE open_things, closed_things, ddbsync_tombstones, ddbsync_rejects")
    things = ModelTable("Things", ("id",), view_type=view)
    records = [r for kind, item in operations if (r := getattr(things, kind)(item)) is not None]
    replicator = Replicator(Mappings((source,)), lambda: connect(database))
    delivered = records + order.sample(records, k=len(records) // 2)  # replays of earlier records
    order.shuffle(delivered)
    for start in range(0, len(delivered), 4):
        result = replicator.process(delivered[start : start + 4])
        assert result.rejected == 0 and result.retry_from is None
    replicator.close()
    for state in ("open", "closed"):
        expected = sorted((k[0][2:], int(v["size"])) for k, v in things.items.items() if v["state"] == state)
        assert rows(sql, f"SELECT id, size FROM {state}_things ORDER BY id") == expected
