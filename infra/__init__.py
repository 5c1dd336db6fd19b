"""Pulumi ComponentResources, one per concern."""
