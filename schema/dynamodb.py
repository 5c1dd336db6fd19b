"""The DynamoDB side of a mapping: key schema and attribute definitions, declared nowhere else.

Both the Pulumi program (`infra/tables.py`) and the local stack create tables from this one
description, so the table in AWS, the table on a laptop and the SQL table share one key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schema.model import TableMapping

STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str  # S, N or B
    role: str  # HASH or RANGE


@dataclass(frozen=True)
class TableDefinition:
    """What DynamoDB needs to create the table a mapping replicates."""

    name: str
    keys: tuple[KeyAttribute, ...]
    stream_view_type: str = STREAM_VIEW_TYPE

    @property
    def hash_key(self) -> str:
        return self.keys[0].name

    @property
    def range_key(self) -> str | None:
        return self.keys[1].name if len(self.keys) > 1 else None

    def create_table_request(self) -> dict[str, Any]:
        """Arguments for boto3's `create_table`: on-demand billing, stream on."""
        return {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": k.name, "KeyType": k.role} for k in self.keys],
            "AttributeDefinitions": [{"AttributeName": k.name, "AttributeType": k.type} for k in self.keys],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": self.stream_view_type},
        }


def table_definition(mapping: TableMapping) -> TableDefinition:
    """The DynamoDB table for a mapping: its key attributes with their types."""
    roles = ("HASH", "RANGE")
    keys = tuple(KeyAttribute(a.name, a.ddb_type, role) for a, role in zip(mapping.key_attributes, roles))
    return TableDefinition(mapping.dynamodb_table, keys)
