"""`smm`: the operator command (tokens, topics, dead letters, and the dev stack)."""
