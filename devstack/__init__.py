"""The dev stack: a real Apache Kafka broker and a real PostgreSQL run as local processes.

No Docker needed. `smm dev up` (see `devstack.cli`) starts them, bootstraps the database and the
topics, then runs the four services; tests use the API in `devstack.state`.
"""
