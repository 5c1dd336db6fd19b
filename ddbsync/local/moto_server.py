"""`python -m ddbsync.local.moto_server -H HOST -p PORT`: moto's server, with DynamoDB exports as AWS writes them.

The patches go into this very process before moto's server main runs, so the DynamoDB backend that writes an
export and the S3 backend that clients read it from are the same objects (see `ddbsync.local.moto_exports`).
"""

from __future__ import annotations

import sys

from moto.server import main

from ddbsync.local.moto_exports import install


def run(argv: list[str]) -> None:
    """Install the export patches, then serve every AWS service moto serves, with moto's own options."""
    install()
    main(argv)


if __name__ == "__main__":
    run(sys.argv[1:])
