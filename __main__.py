"""The Pulumi program: read stack config, build the components, export outputs.

The mapping is loaded first so that a broken mapping fails `pulumi preview` with the attribute named.
The AWS resources themselves are not declared yet.
"""

from __future__ import annotations

import pulumi

from schema.model import load_mappings

mappings = load_mappings()
pulumi.export("mapped_tables", [m.dynamodb_table for m in mappings])
