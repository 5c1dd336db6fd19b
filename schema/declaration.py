"""Reading the mapping files: TOML declarations into the model, every mistake named at load time.

A plain mapping is one DynamoDB table to one SQL table:

    dynamodb_table = "Employees"
    partition_key = "Id"
    [attributes]
    Id = { type = "N", column = "id", sql = "bigint" }

A single-table mapping declares entities instead, each with a match rule, key templates and the
columns its placeholders fill (see `schema/mappings/shop.toml`). Both may declare global secondary
indexes (`[[indexes]]`) and the types of key attributes the attributes do not map (`key_types`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from schema.model import (
    Attribute,
    KeyAttribute,
    MappingError,
    Mappings,
    SecondaryIndex,
    SourceTable,
    TableMapping,
)
from schema.templates import KeyTemplate, MatchRule, TemplateError, parse_rules, parse_template
from schema.types import DEFAULT_SQL_TYPE, DYNAMODB_TYPES, KEY_TYPES, column_type

MAPPINGS_DIR = Path(__file__).parent / "mappings"
MAPPINGS_ENV = "DDBSYNC_MAPPINGS"

# PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
MAX_IDENTIFIER_BYTES = 63
RESERVED_PREFIX = "_ddb_"

# What happens to an attribute that the mapping does not name.
UNKNOWN_ATTRIBUTE_POLICIES = {
    "extras": "kept in the row's `_ddb_extras` jsonb column (default: nothing is lost)",
    "reject": "the whole record goes to the rejects table until the mapping names the attribute",
    "ignore": "dropped: for attributes that are known and deliberately not replicated",
}
# What happens to an item no entity matches.
UNMATCHED_POLICIES = ("reject", "ignore")
PROJECTIONS = ("ALL", "KEYS_ONLY", "INCLUDE")

TABLE_SETTINGS = {"dynamodb_table", "partition_key", "sort_key", "key_types", "indexes"}
PLAIN_SETTINGS = TABLE_SETTINGS | {"sql_table", "unknown_attributes", "attributes"}
ENTITY_TABLE_SETTINGS = TABLE_SETTINGS | {"entities", "unmatched", "unknown_attributes"}
ENTITY_SETTINGS = {"name", "sql_table", "match", "keys", "key_columns", "attributes", "unknown_attributes"}

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")


def snake_case(name: str) -> str:
    """Default column name for an attribute: `empName` -> `emp_name`, `address.city` -> `address_city`."""
    return _SNAKE.sub("_", name).strip("_").lower()


def parse_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> SourceTable:
    """Build and check one DynamoDB table's mapping from its declaration."""
    table = data.get("dynamodb_table")
    if not isinstance(table, str) or not table:
        raise MappingError(f"{source}: `dynamodb_table` is required")
    where = f"mapping {table}"
    entities = "entities" in data
    _known_settings(where, data, ENTITY_TABLE_SETTINGS if entities else PLAIN_SETTINGS)
    partition_key, sort_key = data.get("partition_key"), data.get("sort_key")
    if not isinstance(partition_key, str):
        raise MappingError(f"{where}: `partition_key` is required")
    key_names = (partition_key,) if sort_key is None else (partition_key, sort_key)
    policy = _choice(where, "unknown_attributes", data.get("unknown_attributes", "extras"), UNKNOWN_ATTRIBUTE_POLICIES)
    if entities:
        declared = data["entities"]
        if not isinstance(declared, list) or not declared:
            raise MappingError(f"{where}: `entities` must be a list of [[entities]] tables")
        mapped = tuple(_parse_entity(where, table, key_names, spec, policy) for spec in declared)
        seen: dict[str, str] = {}
        for entity in mapped:
            other = seen.setdefault(entity.sql_table, entity.entity or "")
            if other != entity.entity:
                raise MappingError(
                    f"{where} entity {entity.entity}: sql_table {entity.sql_table!r} is mapped twice (also by {other})"
                )
        unmatched = _choice(where, "unmatched", data.get("unmatched", "reject"), UNMATCHED_POLICIES)
    else:
        mapped = (_parse_plain(where, table, key_names, data, policy),)
        unmatched = "reject"
    types = _key_types(where, data.get("key_types", {}), mapped)
    keys = tuple(KeyAttribute(name, types.get(name, "S")) for name in key_names)
    for key in keys:
        _check_key_type(f"{where}.{key.name}", key.type)
    indexes = tuple(_parse_index(where, spec, types) for spec in _list(where, "indexes", data.get("indexes", [])))
    return SourceTable(table, keys, mapped, unmatched, indexes)


def _parse_plain(where: str, table: str, key_names: tuple[str, ...], data: Mapping[str, Any], policy: str):
    sql_table = data.get("sql_table") or snake_case(table)
    _check_identifier(where, "sql_table", sql_table)
    attributes = _parse_attributes(where, data.get("attributes"))
    _check_columns(where, attributes)
    by_name = {a.name: a for a in attributes}
    for role, key in zip(("partition_key", "sort_key"), key_names):
        if key not in by_name:
            raise MappingError(f"{where}.{key}: {role} is not a mapped attribute; add it to `attributes`")
        _check_key_column(f"{where}.{key}", by_name[key])
    return TableMapping(table, sql_table, key_names[0], _sort(key_names), attributes, policy)


def _parse_entity(where: str, table: str, key_names: tuple[str, ...], spec: Any, policy: str) -> TableMapping:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise MappingError(f"{where}: each [[entities]] needs a `name`")
    name = spec["name"]
    at = f"{where} entity {name}"
    _known_settings(at, spec, ENTITY_SETTINGS)
    sql_table = spec.get("sql_table") or snake_case(f"{table}_{name}")
    _check_identifier(at, "sql_table", sql_table)
    try:
        rules = parse_rules(spec["match"]) if "match" in spec else ()
        templates = tuple(parse_template(key, text) for key, text in spec.get("keys", {}).items())
    except TemplateError as error:
        raise MappingError(f"{at}: {error}") from None
    for template in templates:
        if template.attribute not in key_names:
            raise MappingError(f"{at}.{template.attribute}: `keys` templates the table's key attributes only")
    placeholders = _parse_key_columns(at, spec.get("key_columns", {}), templates)
    attributes = placeholders + _parse_attributes(at, spec.get("attributes", {}), allow_empty=True)
    _check_columns(at, attributes)
    constants = _constants(rules, key_names, templates)
    by_path = {a.path: a for a in attributes if a.path}
    for key in key_names:
        if key in {t.attribute for t in templates} or key in dict(constants):
            continue
        if (key,) not in by_path:
            raise MappingError(
                f"{at}.{key}: a row of {sql_table} could not give the key back; "
                "give the key attribute a template in `keys`, an exact `match`, or an attribute"
            )
        _check_key_column(f"{at}.{key}", by_path[(key,)])
    if not placeholders and not any((key,) in by_path for key in key_names):
        raise MappingError(
            f"{at}: every key attribute is a constant, so {sql_table} could hold one row only and has no "
            "primary key; template a key attribute in `keys` or map it as an attribute"
        )
    entity_policy = _choice(
        at, "unknown_attributes", spec.get("unknown_attributes", policy), UNKNOWN_ATTRIBUTE_POLICIES
    )
    return TableMapping(
        table, sql_table, key_names[0], _sort(key_names), attributes, entity_policy, name, rules, templates, constants
    )


def _parse_key_columns(at: str, declared: Any, templates: tuple[KeyTemplate, ...]) -> tuple[Attribute, ...]:
    """The columns a template's placeholders fill: text unless declared a number type."""
    if not isinstance(declared, Mapping):
        raise MappingError(f'{at}: `key_columns` must be a table such as {{ customer_id = "text" }}')
    used = [name for t in templates for name in t.placeholders]
    for name in used:
        if used.count(name) > 1:
            raise MappingError(
                f"{at}.{name}: the placeholder {{{name}}} is in two key templates; one column cannot hold both "
                "key attributes' parts (name them apart, for example {user_id} and {friend_id})"
            )
        if name not in declared:
            raise MappingError(
                f"{at}.{name}: the template placeholder {{{name}}} is not a declared column; "
                f'add it to `key_columns` (for example {name} = "text")'
            )
    columns = []
    for name, spec in declared.items():
        if name not in used:
            raise MappingError(f"{at}.{name}: key column {name!r} is in no template of `keys`")
        spec = {"sql": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, Mapping) or set(spec) - {"sql", "column"}:
            raise MappingError(f'{at}.{name}: expected "text" or {{ sql = ..., column = ... }}')
        try:
            sql = column_type(spec.get("sql", "text"))
        except ValueError as error:
            raise MappingError(f"{at}.{name}: {error}") from None
        ddb_type = "S" if "S" in sql.accepts else "N"
        if sql.accepts.isdisjoint({"S", "N"}) or not sql.exact or sql.sql == "jsonb":
            raise MappingError(f"{at}.{name}: a key column is text or an exact number type, not {sql.sql}")
        column = spec.get("column") or name
        _check_column_name(f"{at}.{name}", column)
        columns.append(Attribute(name, ddb_type, column, sql))
    return tuple(columns)


def _constants(rules: tuple[MatchRule, ...], keys: tuple[str, ...], templates: tuple[KeyTemplate, ...]):
    templated = {t.attribute for t in templates}
    return tuple(
        (r.attribute, r.equals) for r in rules if r.attribute in keys and r.equals and r.attribute not in templated
    )


def _parse_attributes(where: str, declared: Any, allow_empty: bool = False) -> tuple[Attribute, ...]:
    if not isinstance(declared, Mapping) or (not declared and not allow_empty):
        raise MappingError(f"{where}: `attributes` must declare at least the key attributes")
    attributes = tuple(_parse_attribute(where, name, spec) for name, spec in declared.items())
    paths = {a.path: a.name for a in attributes if a.path}
    for attribute in attributes:
        for depth in range(1, len(attribute.path)):
            if attribute.path[:depth] in paths:
                raise MappingError(
                    f"{where}.{attribute.name}: path mapped twice, inside {paths[attribute.path[:depth]]!r} "
                    "which has a column of its own"
                )
    if len(paths) != len([a for a in attributes if a.path]):
        raise MappingError(f"{where}: a path is mapped twice")
    return attributes


def _check_columns(where: str, attributes: tuple[Attribute, ...]) -> None:
    """Each column once, whether an attribute's, a path's or a key template placeholder's."""
    seen: dict[str, str] = {}
    for attribute in attributes:
        other = seen.setdefault(attribute.column, attribute.name)
        if other != attribute.name:
            raise MappingError(f"{where}.{attribute.name}: column {attribute.column!r} is already used by {other}")


def _parse_attribute(where: str, name: str, spec: Any) -> Attribute:
    at = f"{where}.{name}"
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise MappingError(f'{at}: expected a type such as "S" or a table {{ type = ..., column = ..., sql = ... }}')
    for extra in sorted(set(spec) - {"type", "column", "sql"}):
        raise MappingError(f"{at}: unknown setting {extra!r} (allowed: type, column, sql)")
    path = tuple(part.strip() for part in name.split("."))
    if not all(path):
        raise MappingError(f"{at}: a path is attribute names separated by dots, such as address.city")
    ddb_type = spec.get("type")
    if ddb_type not in DYNAMODB_TYPES:
        raise MappingError(f"{at}: unknown DynamoDB type {ddb_type!r} (allowed: {', '.join(DYNAMODB_TYPES)})")
    column = spec.get("column") or snake_case(name)
    _check_column_name(at, column)
    try:
        sql = column_type(spec.get("sql") or DEFAULT_SQL_TYPE[ddb_type])
    except ValueError as error:
        raise MappingError(f"{at}: {error}") from None
    if ddb_type not in sql.accepts:
        raise MappingError(f"{at}: a {ddb_type} attribute cannot be stored as {sql.sql}")
    return Attribute(name, ddb_type, column, sql, path)


def _parse_index(where: str, spec: Any, types: dict[str, str]) -> SecondaryIndex:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise MappingError(f"{where}: each [[indexes]] needs a `name`, a `partition_key`, optionally a `sort_key`")
    at = f"{where} index {spec['name']}"
    _known_settings(at, spec, {"name", "partition_key", "sort_key", "projection"})
    names = [spec.get("partition_key"), spec.get("sort_key")]
    if not isinstance(names[0], str):
        raise MappingError(f"{at}: `partition_key` is required")
    keys = tuple(KeyAttribute(n, types.get(n, "S")) for n in names if n is not None)
    projection = spec.get("projection", "ALL")
    if isinstance(projection, list) and all(isinstance(p, str) for p in projection):
        return SecondaryIndex(spec["name"], keys, "INCLUDE", tuple(projection))
    _choice(at, "projection", projection, PROJECTIONS[:2] + ("a list of attributes",))
    return SecondaryIndex(spec["name"], keys, projection)


def _key_types(where: str, declared: Any, mapped: tuple[TableMapping, ...]) -> dict[str, str]:
    """Types of key and index attributes: declared in `key_types`, else as a plain attribute maps them."""
    if not isinstance(declared, Mapping):
        raise MappingError(f'{where}: `key_types` must be a table such as {{ PK = "S" }}')
    types = {a.path[0]: a.ddb_type for m in mapped for a in m.attributes if len(a.path) == 1}
    for name, kind in declared.items():
        _check_key_type(f"{where}.{name}", kind)
        types[name] = kind
    return types


def _check_key_type(at: str, kind: Any) -> None:
    if kind not in KEY_TYPES:
        raise MappingError(f"{at}: a key attribute must be of type {', '.join(KEY_TYPES)}, not {kind}")


def _check_key_column(at: str, attribute: Attribute) -> None:
    _check_key_type(at, attribute.ddb_type)
    if not attribute.type.exact:
        raise MappingError(
            f"{at}: a key attribute needs an exact column type, not {attribute.sql_type} "
            "(distinct keys such as 0.1 and 0.10000000000000000001 would become one row): use numeric"
        )


def _check_column_name(at: str, column: Any) -> None:
    _check_identifier(at, "column", column)
    if column.startswith(RESERVED_PREFIX):
        raise MappingError(
            f"{at}: column {column!r} uses the prefix {RESERVED_PREFIX!r}, kept for ddbsync's own columns"
        )


def _check_identifier(where: str, what: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise MappingError(f"{where}: {what} must be a non-empty name")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise MappingError(
            f"{where}: {what} {name!r} is {len(name.encode('utf-8'))} bytes; "
            f"PostgreSQL names hold at most {MAX_IDENTIFIER_BYTES}"
        )


def _known_settings(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    for extra in sorted(set(data) - known):
        raise MappingError(f"{where}: unknown setting {extra!r} (allowed: {', '.join(sorted(known))})")


def _choice(where: str, key: str, value: Any, allowed: Any) -> Any:
    if value not in allowed:
        raise MappingError(f"{where}: {key} = {value!r} (allowed: {', '.join(allowed)})")
    return value


def _list(where: str, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MappingError(f"{where}: `{key}` must be a list of [[{key}]] tables")
    return value


def _sort(key_names: tuple[str, ...]) -> str | None:
    return key_names[1] if len(key_names) > 1 else None


def load_mappings(directory: str | os.PathLike[str] | None = None) -> Mappings:
    """Load every `*.toml` mapping from `directory`, `$DDBSYNC_MAPPINGS`, or the shipped examples."""
    folder = Path(directory or os.environ.get(MAPPINGS_ENV) or MAPPINGS_DIR)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise MappingError(f"no mapping files (*.toml) in {folder}")
    tables = []
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise MappingError(f"{path.name}: not valid TOML: {error}") from None
        tables.append(parse_mapping(data, source=path.name))
    return Mappings(tuple(tables))
