"""`python -m ddbsync.cli`, the same as the `ddbsync` command."""

import sys

from ddbsync.cli import main

sys.exit(main())
