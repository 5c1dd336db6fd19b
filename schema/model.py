"""The mapping model: which DynamoDB table lands in which SQL table, attribute by attribute.

Mappings are data (one TOML file per DynamoDB table in `schema/mappings/`), so they can be read,
diffed and reviewed like any other declaration. Every other part of ddbsync derives from them:
the DynamoDB key schema, the SQL tables and migrations, and the conversion of stream records.
A mapping that cannot work fails here, at load time, with the table and attribute in the message.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping

from schema.types import DEFAULT_SQL_TYPE, DYNAMODB_TYPES, KEY_TYPES, ColumnType, column_type

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

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")


class MappingError(ValueError):
    """A mapping that cannot be used; the message names the table and the attribute."""


@dataclass(frozen=True)
class Attribute:
    """One DynamoDB attribute and the SQL column it lands in."""

    name: str
    ddb_type: str
    column: str
    type: ColumnType

    @property
    def sql_type(self) -> str:
        return self.type.sql


@dataclass(frozen=True, eq=False)
class TableMapping:
    """One DynamoDB table and the SQL table that mirrors it (compared by identity: it keys hot dicts)."""

    dynamodb_table: str
    sql_table: str
    partition_key: str
    sort_key: str | None
    attributes: tuple[Attribute, ...]
    unknown_attributes: str = "extras"
    _by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {a.name: a for a in self.attributes})

    @cached_property
    def key_positions(self) -> tuple[int, ...]:
        """Where the key attributes sit in `attributes` (and so in a decoded row)."""
        return tuple(self.attributes.index(self._by_name[name]) for name in self.key_names)

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.partition_key,) if self.sort_key is None else (self.partition_key, self.sort_key)

    @property
    def key_attributes(self) -> tuple[Attribute, ...]:
        return tuple(self._by_name[name] for name in self.key_names)

    @property
    def keeps_extras(self) -> bool:
        return self.unknown_attributes == "extras"

    def attribute(self, name: str) -> Attribute | None:
        return self._by_name.get(name)


@dataclass(frozen=True)
class Mappings:
    """All mappings of a deployment, found by DynamoDB table name."""

    tables: tuple[TableMapping, ...]

    def __post_init__(self) -> None:
        _check_unique(self.tables)
        object.__setattr__(self, "_by_dynamodb_table", {t.dynamodb_table: t for t in self.tables})

    def __iter__(self) -> Iterator[TableMapping]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def for_dynamodb_table(self, name: str) -> TableMapping | None:
        return self._by_dynamodb_table.get(name)

    def for_sql_table(self, name: str) -> TableMapping | None:
        return next((t for t in self.tables if t.sql_table == name), None)


def snake_case(name: str) -> str:
    """Default column name for an attribute: `empName` -> `emp_name`."""
    return _SNAKE.sub("_", name).strip("_").lower()


def parse_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> TableMapping:
    """Build and check one table mapping from its declaration."""
    table = data.get("dynamodb_table")
    if not isinstance(table, str) or not table:
        raise MappingError(f"{source}: `dynamodb_table` is required")
    where = f"mapping {table}"
    known = {"dynamodb_table", "sql_table", "partition_key", "sort_key", "unknown_attributes", "attributes"}
    for extra in sorted(set(data) - known):
        raise MappingError(f"{where}: unknown setting {extra!r} (allowed: {', '.join(sorted(known))})")
    sql_table = data.get("sql_table") or snake_case(table)
    _check_identifier(where, "sql_table", sql_table)
    policy = data.get("unknown_attributes", "extras")
    if policy not in UNKNOWN_ATTRIBUTE_POLICIES:
        raise MappingError(
            f"{where}: unknown_attributes = {policy!r} (allowed: {', '.join(UNKNOWN_ATTRIBUTE_POLICIES)})"
        )
    declared = data.get("attributes")
    if not isinstance(declared, Mapping) or not declared:
        raise MappingError(f"{where}: `attributes` must declare at least the key attributes")
    attributes = tuple(_parse_attribute(where, name, spec) for name, spec in declared.items())
    _check_columns(where, attributes)

    partition_key = data.get("partition_key")
    sort_key = data.get("sort_key")
    if not isinstance(partition_key, str):
        raise MappingError(f"{where}: `partition_key` is required")
    by_name = {a.name: a for a in attributes}
    for role, key in (("partition_key", partition_key), ("sort_key", sort_key)):
        if key is None:
            continue
        attribute = by_name.get(key)
        if attribute is None:
            raise MappingError(f"{where}.{key}: {role} is not a mapped attribute; add it to `attributes`")
        if attribute.ddb_type not in KEY_TYPES:
            raise MappingError(
                f"{where}.{key}: a key attribute must be of type {', '.join(KEY_TYPES)}, not {attribute.ddb_type}"
            )
        if not attribute.type.exact:
            raise MappingError(
                f"{where}.{key}: a key attribute needs an exact column type, not {attribute.sql_type} "
                "(distinct keys such as 0.1 and 0.10000000000000000001 would become one row): use numeric"
            )
    return TableMapping(table, sql_table, partition_key, sort_key, attributes, policy)


def _parse_attribute(where: str, name: str, spec: Any) -> Attribute:
    at = f"{where}.{name}"
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise MappingError(f'{at}: expected a type such as "S" or a table {{ type = ..., column = ..., sql = ... }}')
    for extra in sorted(set(spec) - {"type", "column", "sql"}):
        raise MappingError(f"{at}: unknown setting {extra!r} (allowed: type, column, sql)")
    ddb_type = spec.get("type")
    if ddb_type not in DYNAMODB_TYPES:
        raise MappingError(f"{at}: unknown DynamoDB type {ddb_type!r} (allowed: {', '.join(DYNAMODB_TYPES)})")
    column = spec.get("column") or snake_case(name)
    _check_identifier(at, "column", column)
    if column.startswith(RESERVED_PREFIX):
        raise MappingError(
            f"{at}: column {column!r} uses the prefix {RESERVED_PREFIX!r}, kept for ddbsync's own columns"
        )
    try:
        sql = column_type(spec.get("sql") or DEFAULT_SQL_TYPE[ddb_type])
    except ValueError as error:
        raise MappingError(f"{at}: {error}") from None
    if ddb_type not in sql.accepts:
        raise MappingError(f"{at}: a {ddb_type} attribute cannot be stored as {sql.sql}")
    return Attribute(name, ddb_type, column, sql)


def _check_identifier(where: str, what: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise MappingError(f"{where}: {what} must be a non-empty name")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise MappingError(
            f"{where}: {what} {name!r} is {len(name.encode('utf-8'))} bytes; "
            f"PostgreSQL names hold at most {MAX_IDENTIFIER_BYTES}"
        )


def _check_columns(where: str, attributes: tuple[Attribute, ...]) -> None:
    seen: dict[str, str] = {}
    for attribute in attributes:
        other = seen.setdefault(attribute.column, attribute.name)
        if other != attribute.name:
            raise MappingError(f"{where}.{attribute.name}: column {attribute.column!r} is already used by {other}")


def _check_unique(tables: tuple[TableMapping, ...]) -> None:
    for attr in ("dynamodb_table", "sql_table"):
        seen: set[str] = set()
        for table in tables:
            value = getattr(table, attr)
            if value in seen:
                raise MappingError(f"mapping {table.dynamodb_table}: {attr} {value!r} is mapped twice")
            seen.add(value)


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
