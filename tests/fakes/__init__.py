"""Local servers that speak networks' wire formats, for connector tests (no real network)."""
