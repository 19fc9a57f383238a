"""Connectors: one per network, each turning that network's wire format into `FetchedMention`s."""
