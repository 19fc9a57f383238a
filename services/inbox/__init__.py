"""Inbox: one place to triage and answer every mention, comment and reply."""
