"""The DynamoDB side of a mapping: key schema, attribute definitions and indexes, declared nowhere else.

Both the Pulumi program (`infra/tables.py`) and the local stack create tables from this one
description, so the table in AWS, the table on a laptop and the SQL tables share one key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schema.model import KeyAttribute, SecondaryIndex, SourceTable

STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
ROLES = ("HASH", "RANGE")


@dataclass(frozen=True)
class TableDefinition:
    """What DynamoDB needs to create the table a mapping replicates."""

    name: str
    keys: tuple[KeyAttribute, ...]
    indexes: tuple[SecondaryIndex, ...] = ()
    stream_view_type: str = STREAM_VIEW_TYPE

    @property
    def hash_key(self) -> str:
        return self.keys[0].name

    @property
    def range_key(self) -> str | None:
        return self.keys[1].name if len(self.keys) > 1 else None

    @property
    def attribute_definitions(self) -> tuple[KeyAttribute, ...]:
        """Every attribute a key of the table or of an index names, once."""
        seen: dict[str, KeyAttribute] = {}
        for key in (*self.keys, *(k for index in self.indexes for k in index.keys)):
            seen.setdefault(key.name, key)
        return tuple(seen.values())

    def create_table_request(self) -> dict[str, Any]:
        """Arguments for boto3's `create_table`: on-demand billing, stream on, the declared indexes."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": key_schema(self.keys),
            "AttributeDefinitions": [
                {"AttributeName": k.name, "AttributeType": k.type} for k in self.attribute_definitions
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": self.stream_view_type},
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {"IndexName": index.name, "KeySchema": key_schema(index.keys), "Projection": projection(index)}
                for index in self.indexes
            ]
        return request


def key_schema(keys: tuple[KeyAttribute, ...]) -> list[dict[str, str]]:
    return [{"AttributeName": k.name, "KeyType": role} for k, role in zip(keys, ROLES)]


def projection(index: SecondaryIndex) -> dict[str, Any]:
    if index.projection == "INCLUDE":
        return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.non_key_attributes)}
    return {"ProjectionType": index.projection}


def table_definition(mapping: SourceTable) -> TableDefinition:
    """The DynamoDB table for a mapping: its key attributes with their types, and its indexes."""
    return TableDefinition(mapping.name, mapping.keys, mapping.indexes)
