"""The mapping model: which DynamoDB table lands in which SQL table, attribute by attribute.

Mappings are data (one TOML file per DynamoDB table in `schema/mappings/`, read by
`schema/declaration.py`), so they can be read, diffed and reviewed like any other declaration.
Every other part of ddbsync derives from them: the DynamoDB key schema and indexes, the SQL tables
and migrations, and the conversion of stream records. One DynamoDB table may feed several SQL
tables (entities of a single-table design), each told by a match rule, its key read through
templates. A mapping that cannot work fails at load time, naming the table, entity and attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

from schema.templates import KeyTemplate, MatchRule
from schema.types import ColumnType


class MappingError(ValueError):
    """A mapping that cannot be used; the message names the table and the attribute."""


@dataclass(frozen=True)
class Attribute:
    """One SQL column and where its value comes from: a (nested) attribute, or a key template's placeholder."""

    name: str  # as declared: `empName`, `address.city`, or a placeholder such as `customer_id`
    ddb_type: str
    column: str
    type: ColumnType
    path: tuple[str, ...] = ()  # attribute names from the item down; () for a placeholder

    @property
    def sql_type(self) -> str:
        return self.type.sql

    @property
    def placeholder(self) -> bool:
        return not self.path


@dataclass(frozen=True)
class KeyAttribute:
    """A key attribute of a DynamoDB table or index, with its type (S, N or B)."""

    name: str
    type: str


@dataclass(frozen=True, eq=False)
class TableMapping:
    """One SQL table fed by one DynamoDB table: the whole table, or one entity of a single-table design.

    Compared by identity: it keys hot dicts.
    """

    dynamodb_table: str
    sql_table: str
    partition_key: str
    sort_key: str | None
    attributes: tuple[Attribute, ...]
    unknown_attributes: str = "extras"
    entity: str | None = None  # the entity's name, in a mapping that declares entities
    rules: tuple[MatchRule, ...] = ()  # all must hold for an item to be this entity
    templates: tuple[KeyTemplate, ...] = ()
    constants: tuple[tuple[str, str], ...] = ()  # key attributes with one value for the whole entity
    _by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {a.name: a for a in self.attributes})

    @cached_property
    def key_positions(self) -> tuple[int, ...]:
        """Where the SQL primary key's columns sit in `attributes` (and so in a decoded row)."""
        templated = {t.attribute for t in self.templates} | {name for name, _ in self.constants}
        positions = [
            i
            for t in self.templates
            for name in t.placeholders
            for i, a in enumerate(self.attributes)
            if a.name == name
        ]
        positions += [self.attributes.index(self._by_name[k]) for k in self.key_names if k not in templated]
        return tuple(positions)

    @property
    def key_names(self) -> tuple[str, ...]:
        """The DynamoDB table's key attributes."""
        return (self.partition_key,) if self.sort_key is None else (self.partition_key, self.sort_key)

    @property
    def primary_key_columns(self) -> tuple[str, ...]:
        return tuple(self.attributes[i].column for i in self.key_positions)

    @cached_property
    def known_names(self) -> frozenset[str]:
        """Top-level attributes the row holds or implies: never kept in the extras."""
        names = {a.path[0] for a in self.attributes if len(a.path) == 1}
        names |= {t.attribute for t in self.templates} | {name for name, _ in self.constants}
        names |= {r.attribute for r in self.rules if r.equals is not None}
        return frozenset(names)

    @cached_property
    def mapped_paths(self) -> frozenset[tuple[str, ...]]:
        return frozenset(a.path for a in self.attributes if len(a.path) > 1)

    @cached_property
    def path_prefixes(self) -> frozenset[tuple[str, ...]]:
        """The maps a mapped path goes through (`("address",)` for `address.city`)."""
        return frozenset(path[:depth] for path in self.mapped_paths for depth in range(1, len(path)))

    @cached_property
    def path_roots(self) -> frozenset[str]:
        """Maps whose members are mapped: known to the `reject` policy, kept whole in the extras."""
        return frozenset(a.path[0] for a in self.attributes if len(a.path) > 1)

    @cached_property
    def plan(self) -> tuple[tuple[str, frozenset[str], Any, bool, Attribute], ...]:
        """Per column of a simple table: attribute name, accepted types, converter, is key, the attribute."""
        keys = set(self.key_names)
        return tuple((a.name, a.type.accepts, a.type.convert, a.name in keys, a) for a in self.attributes)

    @cached_property
    def simple(self) -> bool:
        """Top-level attributes only, the key as it is: the decode's fast path."""
        return not self.templates and not self.constants and all(len(a.path) == 1 for a in self.attributes)

    @property
    def keeps_extras(self) -> bool:
        return self.unknown_attributes == "extras"

    def attribute(self, name: str) -> Attribute | None:
        return self._by_name.get(name)

    def describe(self) -> str:
        return f"{self.entity} ({self.sql_table})" if self.entity else self.sql_table


@dataclass(frozen=True)
class SecondaryIndex:
    """A global secondary index the mapping declares, created with the table in AWS and locally."""

    name: str
    keys: tuple[KeyAttribute, ...]
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class SourceTable:
    """One DynamoDB table: its key, its indexes, and the SQL tables (entities) its items go to."""

    name: str
    keys: tuple[KeyAttribute, ...]
    entities: tuple[TableMapping, ...]
    unmatched: str = "reject"
    indexes: tuple[SecondaryIndex, ...] = ()

    @property
    def dynamodb_table(self) -> str:
        return self.name

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    @cached_property
    def only(self) -> TableMapping | None:
        """The one entity, when every item goes to it: no routing needed."""
        return self.entities[0] if len(self.entities) == 1 and not self.entities[0].rules else None

    @cached_property
    def routes_by_attribute(self) -> bool:
        """Whether an entity is told by a non-key attribute, so an item can move between entities."""
        keys = set(self.key_names)
        return any(rule.attribute not in keys for entity in self.entities for rule in entity.rules)

    def route(self, image: dict[str, Any]) -> TableMapping | None:
        """The first entity whose rules all hold for the item, or None."""
        for entity in self.entities:
            if all(rule.matches(image) for rule in entity.rules):
                return entity
        return None

    def describe_rules(self) -> str:
        return "; ".join(
            f"{e.entity}: {' and '.join(r.describe() for r in e.rules) or 'any item'}" for e in self.entities
        )


@dataclass(frozen=True)
class Mappings:
    """All mappings of a deployment: DynamoDB tables by name, SQL tables (entities) by name."""

    tables: tuple[SourceTable, ...]

    def __post_init__(self) -> None:
        _check_unique(self.tables)
        object.__setattr__(self, "_by_dynamodb_table", {t.name: t for t in self.tables})
        object.__setattr__(self, "_by_sql_table", {e.sql_table: e for e in self.entities})

    def __iter__(self) -> Iterator[SourceTable]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    @property
    def entities(self) -> tuple[TableMapping, ...]:
        """Every SQL table the mappings feed."""
        return tuple(e for t in self.tables for e in t.entities)

    def for_dynamodb_table(self, name: str) -> SourceTable | None:
        return self._by_dynamodb_table.get(name)

    def for_sql_table(self, name: str) -> TableMapping | None:
        return self._by_sql_table.get(name)


def _check_unique(tables: tuple[SourceTable, ...]) -> None:
    seen_tables: set[str] = set()
    seen_sql: dict[str, str] = {}
    for table in tables:
        if table.name in seen_tables:
            raise MappingError(f"mapping {table.name}: dynamodb_table {table.name!r} is mapped twice")
        seen_tables.add(table.name)
        for entity in table.entities:
            where = f"mapping {table.name}" + (f" entity {entity.entity}" if entity.entity else "")
            other = seen_sql.setdefault(entity.sql_table, where)
            if other != where:
                raise MappingError(f"{where}: sql_table {entity.sql_table!r} is mapped twice (also by {other})")


# The declaration's parser builds these classes; both are reached from here.
from schema.declaration import load_mappings, parse_mapping, snake_case  # noqa: E402

__all__ = [
    "Attribute",
    "KeyAttribute",
    "MappingError",
    "Mappings",
    "SecondaryIndex",
    "SourceTable",
    "TableMapping",
    "load_mappings",
    "parse_mapping",
    "snake_case",
]
