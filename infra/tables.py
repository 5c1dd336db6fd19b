"""The DynamoDB tables, one per mapping, keyed and indexed exactly as the mapping says (schema/dynamodb.py).

An adopted table is used as it is, its own indexes included.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from schema.dynamodb import TableDefinition


@dataclass
class TablesArgs:
    definitions: list[TableDefinition]
    kms_key_arn: pulumi.Input[str]
    adopt: tuple[str, ...] = ()  # names of existing tables to use as they are
    deletion_protection: bool = False


class Tables(pulumi.ComponentResource):
    """Tables with streams (new and old images), point-in-time recovery and KMS encryption."""

    def __init__(self, name: str, args: TablesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Tables", name, None, opts)
        self.tables: dict[str, aws.dynamodb.Table] = {}
        self.stream_arns: dict[str, pulumi.Output[str]] = {}
        self.table_arns: dict[str, pulumi.Output[str]] = {}
        for definition in args.definitions:
            if definition.name in args.adopt:
                existing = aws.dynamodb.get_table_output(name=definition.name)
                self.stream_arns[definition.name] = existing.stream_arn
                self.table_arns[definition.name] = existing.arn
                continue
            table = aws.dynamodb.Table(
                f"{name}-{definition.name}",
                name=definition.name,
                billing_mode="PAY_PER_REQUEST",
                hash_key=definition.hash_key,
                range_key=definition.range_key,
                attributes=[
                    aws.dynamodb.TableAttributeArgs(name=k.name, type=k.type) for k in definition.attribute_definitions
                ],
                global_secondary_indexes=[
                    aws.dynamodb.TableGlobalSecondaryIndexArgs(
                        name=index.name,
                        hash_key=index.keys[0].name,
                        range_key=index.keys[1].name if len(index.keys) > 1 else None,
                        projection_type=index.projection,
                        non_key_attributes=list(index.non_key_attributes) or None,
                    )
                    for index in definition.indexes
                ],
                stream_enabled=True,
                stream_view_type=definition.stream_view_type,
                point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
                server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                    enabled=True, kms_key_arn=args.kms_key_arn
                ),
                deletion_protection_enabled=args.deletion_protection,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.tables[definition.name] = table
            self.stream_arns[definition.name] = table.stream_arn
            self.table_arns[definition.name] = table.arn
        self.register_outputs({"stream_arns": self.stream_arns})
