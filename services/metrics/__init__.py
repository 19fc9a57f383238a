"""Metrics: rollups of everything that happens, an analytics API, and Prometheus."""
