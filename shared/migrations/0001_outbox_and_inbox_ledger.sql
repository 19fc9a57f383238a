-- Tables every service has in its own schema: the transactional outbox and the ledger of events
-- a consumer has already applied. Unqualified names land in the service's schema (search_path).

CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    event       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wake the relay as soon as a transaction that wrote outbox rows commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smm_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
