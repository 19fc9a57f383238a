"""Code every OpenSMM service shares: settings, events, Kafka, Postgres, outbox, auth, metrics."""
