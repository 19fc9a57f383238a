"""Ingest: hears mentions and comments on every network and emits them as events."""
