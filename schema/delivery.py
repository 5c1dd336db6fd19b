"""How a stream's changes are delivered to the replicator: one definition for AWS and the local stack.

The Pulumi program's event source mappings and the local stack's stream runner both take these
settings from here, so the local stack waits, retries and sets aside exactly as AWS will.

Why these defaults: bad data never fails a batch (it goes to the rejects table), so every failure
left is one that waiting mends (the database away, a failover, a paused cluster waking up). So
retries are unlimited and nothing is bisected; a batch is set aside (to the on-failure queue, for
`ddbsync redrive`) only once its records are 20 hours old, while the stream, which keeps 24 hours,
still holds them. The price: a shard waits while the database is away; nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_RETENTION_SECONDS = 24 * 3600
UNLIMITED = -1  # Lambda's value for "no limit" (retries, record age)


@dataclass(frozen=True)
class StreamDelivery:
    """Event source mapping settings (Lambda's names) plus the function timeout they work with."""

    batch_size: int = 100
    maximum_batching_window_in_seconds: int = 1
    maximum_retry_attempts: int = UNLIMITED
    maximum_record_age_in_seconds: int = 20 * 3600
    bisect_batch_on_function_error: bool = False
    parallelization_factor: int = 1
    starting_position: str = "TRIM_HORIZON"
    function_timeout_seconds: int = 60

    def retries_exhausted(self, attempts: int) -> bool:
        """Whether a batch tried `attempts` times (the first call included) is set aside."""
        return self.maximum_retry_attempts != UNLIMITED and attempts > self.maximum_retry_attempts

    def too_old(self, age_seconds: float) -> bool:
        """Whether a record this old is set aside instead of delivered."""
        return self.maximum_record_age_in_seconds != UNLIMITED and age_seconds > self.maximum_record_age_in_seconds
