"""The replication core: decode, version, coalesce, apply. No AWS, Lambda or Pulumi imports.

The same code runs in the Lambda handlers, the local stack and the tests.
"""

from ddbsync.core.batch import BatchResult, ConfigurationError, Replicator

__all__ = ["BatchResult", "ConfigurationError", "Replicator"]
