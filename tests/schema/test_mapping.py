"""The mapping model: the shipped examples, defaults, and one clear error per broken mapping."""

from __future__ import annotations

import pytest

from schema.model import MappingError, load_mappings, parse_mapping


def mapping(**overrides):
    data = {
        "dynamodb_table": "Orders",
        "partition_key": "pk",
        "attributes": {"pk": {"type": "S"}, "total": {"type": "N"}},
    }
    data.update(overrides)
    return data


def test_shipped_employees_mapping_matches_the_seed():
    (employees,) = load_mappings().for_dynamodb_table("Employees").entities
    assert employees.sql_table == "employees"
    assert employees.key_names == ("Id",)
    assert [(a.name, a.ddb_type, a.column, a.sql_type) for a in employees.attributes] == [
        ("Id", "N", "id", "bigint"),
        ("empName", "S", "name", "varchar(20)"),
        ("empDepartment", "S", "department", "varchar(10)"),
    ]


def test_composite_key_example_has_partition_and_sort_key():
    source = load_mappings().for_dynamodb_table("dynamotest")
    assert source.key_names == ("id", "datetime")
    assert source.entities[0].primary_key_columns == ("id", "event_time")


def test_defaults_are_snake_case_columns_and_exact_types():
    (table,) = parse_mapping(
        mapping(
            attributes={
                "pk": "S",
                "orderTotal": "N",
                "blob": "B",
                "paid": "BOOL",
                "tags": "SS",
                "sizes": "NS",
                "chunks": "BS",
                "items": "L",
                "address": "M",
                "nothing": "NULL",
            }
        )
    ).entities
    assert {a.name: (a.column, a.sql_type) for a in table.attributes} == {
        "pk": ("pk", "text"),
        "orderTotal": ("order_total", "numeric"),
        "blob": ("blob", "bytea"),
        "paid": ("paid", "boolean"),
        "tags": ("tags", "text[]"),
        "sizes": ("sizes", "numeric[]"),
        "chunks": ("chunks", "bytea[]"),
        "items": ("items", "jsonb"),
        "address": ("address", "jsonb"),
        "nothing": ("nothing", "jsonb"),
    }
    assert table.unknown_attributes == "extras"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"attributes": {"pk": {"type": "S"}, "total": {"type": "X"}}},
            "mapping Orders.total: unknown DynamoDB type 'X'",
        ),
        (
            {"attributes": {"pk": {"type": "S"}, "a": {"type": "S", "column": "c"}, "b": {"type": "N", "column": "c"}}},
            "mapping Orders.b: column 'c' is already used by a",
        ),
        ({"partition_key": "missing"}, "mapping Orders.missing: partition_key is not a mapped attribute"),
        ({"sort_key": "nope"}, "mapping Orders.nope: sort_key is not a mapped attribute"),
        (
            {"attributes": {"pk": {"type": "S"}, "total": {"type": "N", "column": "x" * 64}}},
            "mapping Orders.total: column '" + "x" * 64 + "' is 64 bytes; PostgreSQL names hold at most 63",
        ),
        ({"sql_table": "t" * 70}, "mapping Orders: sql_table"),
        (
            {"attributes": {"pk": {"type": "S"}, "total": {"type": "N", "sql": "varchar(5)"}}},
            "mapping Orders.total: a N attribute cannot be stored as varchar(5)",
        ),
        (
            {"attributes": {"pk": {"type": "S"}, "total": {"type": "N", "sql": "money"}}},
            "mapping Orders.total: unsupported SQL type 'money'",
        ),
        ({"attributes": {"pk": {"type": "M"}}}, "mapping Orders.pk: a key attribute must be of type S, N, B, not M"),
        (
            {"attributes": {"pk": {"type": "N", "sql": "double precision"}}},
            "mapping Orders.pk: a key attribute needs an exact column type, not double precision",
        ),
        (
            {"unknown_attributes": "keep"},
            "mapping Orders: unknown_attributes = 'keep' (allowed: extras, reject, ignore)",
        ),
        (
            {"attributes": {"pk": {"type": "S"}, "t": {"type": "S", "column": "_ddb_version"}}},
            "mapping Orders.t: column '_ddb_version' uses the prefix",
        ),
        ({"attributes": {"pk": {"type": "S", "colum": "p"}}}, "mapping Orders.pk: unknown setting 'colum'"),
    ],
)
def test_broken_mapping_names_table_and_attribute(overrides, message):
    with pytest.raises(MappingError) as error:
        parse_mapping(mapping(**overrides))
    assert message in str(error.value)


def test_two_mappings_for_one_sql_table_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(
            f'dynamodb_table = "{name}"\nsql_table = "same"\npartition_key = "k"\n[attributes]\nk = "S"\n'
        )
    with pytest.raises(MappingError, match="mapping b: sql_table 'same' is mapped twice"):
        load_mappings(tmp_path)


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "broken.toml").write_text("dynamodb_table = \n")
    with pytest.raises(MappingError, match="broken.toml: not valid TOML"):
        load_mappings(tmp_path)


def numeric_5_1():
    (table,) = parse_mapping(mapping(attributes={"pk": "S", "total": {"type": "N", "sql": "numeric(5,1)"}})).entities
    return table.attribute("total").type.convert


@pytest.mark.parametrize(
    "raw, stored", [("1.50", "1.5"), ("1.5", "1.5"), ("-1234.5", "-1234.5"), ("0.00", "0"), ("1E+3", "1000")]
)
def test_numeric_with_precision_and_scale_takes_what_fits_exactly(raw, stored):
    assert numeric_5_1()("N", raw) == stored


@pytest.mark.parametrize(
    "raw, reason", [("1.25", "decimal places"), ("12345", "does not fit"), ("1E+4", "does not fit")]
)
def test_numeric_with_precision_and_scale_refuses_what_would_be_rounded(raw, reason):
    from schema.types import ConversionError

    with pytest.raises(ConversionError, match=reason):
        numeric_5_1()("N", raw)


def shop_like(**entity_changes) -> dict:
    """A two-entity mapping like the shipped Shop, with the order entity changed as given."""
    order = {
        "name": "order",
        "sql_table": "orders",
        "match": {"SK": {"prefix": "ORDER#"}},
        "keys": {"PK": "CUSTOMER#{customer_id}", "SK": "ORDER#{order_id}"},
        "key_columns": {"customer_id": "text", "order_id": "text"},
        "attributes": {"total": "N"},
    }
    order.update(entity_changes)
    customer = {
        "name": "customer",
        "sql_table": "customers",
        "match": {"SK": "PROFILE"},
        "keys": {"PK": "CUSTOMER#{customer_id}"},
        "key_columns": {"customer_id": "text"},
    }
    return {"dynamodb_table": "Shop", "partition_key": "PK", "sort_key": "SK", "entities": [customer, order]}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sql_table": "customers"}, "mapping Shop entity order: sql_table 'customers' is mapped twice"),
        (
            {"key_columns": {"customer_id": "text"}},
            "mapping Shop entity order.order_id: the template placeholder {order_id} is not a declared column",
        ),
        (
            {"attributes": {"address": "M", "address.city": "S"}},
            "mapping Shop entity order.address.city: path mapped twice, inside 'address'",
        ),
        (
            {"keys": {"PK": "CUSTOMER#{customer_id}"}, "key_columns": {"customer_id": "text"}},
            "mapping Shop entity order.SK: a row of orders could not give the key back",
        ),
        (
            {"keys": {"PK": "CUSTOMER#{customer_id}{order_id}"}},
            "puts two placeholders side by side",
        ),
        (
            {"keys": {"GSI1PK": "X#{x}"}},
            "mapping Shop entity order.GSI1PK: `keys` templates the table's key attributes only",
        ),
        ({"match": {"SK": {"suffix": "#"}}}, "mapping Shop entity order: match on SK: expected a value or { prefix"),
        (
            {"key_columns": {"customer_id": "text", "order_id": "double precision"}},
            "mapping Shop entity order.order_id: a key column is text or an exact number type, not double precision",
        ),
    ],
)
def test_broken_entities_name_the_table_entity_and_attribute(changes, message):
    with pytest.raises(MappingError) as error:
        parse_mapping(shop_like(**changes))
    assert message in str(error.value)


def test_two_mappings_writing_one_sql_table_are_refused():
    from schema.model import Mappings

    with pytest.raises(MappingError, match="sql_table 'customers' is mapped twice"):
        Mappings((parse_mapping(shop_like()), parse_mapping(mapping(sql_table="customers"))))


def test_the_shipped_shop_mapping_is_the_single_table_example():
    shop = load_mappings().for_dynamodb_table("Shop")
    assert [(k.name, k.type) for k in shop.keys] == [("PK", "S"), ("SK", "S")]
    customers, orders = shop.entities
    assert (customers.sql_table, customers.primary_key_columns) == ("shop_customers", ("customer_id",))
    assert (orders.sql_table, orders.primary_key_columns) == ("shop_orders", ("customer_id", "order_id"))
    assert {a.column: a.sql_type for a in customers.attributes}["created_at"] == "timestamptz"
    assert {a.column: a.path for a in customers.attributes}["city"] == ("address", "city")
    assert {a.column: a.sql_type for a in orders.attributes}["total"] == "numeric(12,2)"
    assert shop.unmatched == "reject" and [i.name for i in shop.indexes] == ["ByEmail"]
