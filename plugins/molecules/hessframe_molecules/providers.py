"""Curvature providers of the molecules plugin."""


def provider_records():
    """Return the provider records."""
    return []
