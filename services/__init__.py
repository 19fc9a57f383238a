"""The four OpenSMM services; each is its own process and owns its own Postgres schema."""
