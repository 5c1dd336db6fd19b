"""Replication lag on the local stack: DynamoDB write to committed PostgreSQL row, at a steady rate.

Writes `--changes` puts/updates/deletes to the Employees table through the moto server at `--rate`
per second while the stream runner delivers them to the Lambda handler, and prints p50/p95/p99 of
(handler returned, i.e. committed) - (record's ApproximateCreationDateTime).

    python bench/local_lag.py [--changes 10000] [--rate 100] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddbsync.local.demo import Deliveries, write_while_replicating  # noqa: E402
from ddbsync.local.stack import LocalStack, handler_metrics_discarded  # noqa: E402
from ddbsync.local.workload import employee_writes  # noqa: E402
from schema.delivery import StreamDelivery  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="writes per second (default 100)")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    if args.changes <= 0 or args.rate <= 0 or args.batch_size <= 0:
        parser.error("--changes, --rate and --batch-size must be positive")
    with handler_metrics_discarded():
        lags, seconds, behind = measure(args)
    lag_ms = sorted(x * 1000 for x in lags)
    pick = lambda p: lag_ms[min(len(lag_ms) - 1, int(p / 100 * len(lag_ms)))]  # noqa: E731
    print(
        f"{len(lag_ms)} stream records from {args.changes} changes in {seconds:.1f} s "
        f"(target {args.rate:.0f}/s; writer at most {behind:.1f} s behind), batch size {args.batch_size}"
    )
    print(f"lag p50 {pick(50):.0f} ms   p95 {pick(95):.0f} ms   p99 {pick(99):.0f} ms   max {lag_ms[-1]:.0f} ms")
    return 0


def measure(args: argparse.Namespace) -> tuple[list[float], float, float]:
    """Run the writer and the runners together; lags in seconds, elapsed seconds, writer's worst delay."""
    stack = LocalStack(settings=StreamDelivery(batch_size=args.batch_size)).start()
    deliveries = Deliveries()
    try:
        rng = random.Random(1)
        run = write_while_replicating(stack, stack.runners(deliveries), employee_writes(args.changes, rng), args.rate)
    finally:
        stack.stop()
    return deliveries.lags, run.seconds, run.behind


if __name__ == "__main__":
    sys.exit(main())
