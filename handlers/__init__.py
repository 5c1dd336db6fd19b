"""Lambda entry points: thin wrappers over ddbsync.core."""
