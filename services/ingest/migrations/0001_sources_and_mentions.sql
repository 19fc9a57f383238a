-- Sources: where mentions come from (here: generic signed webhooks), per tenant and brand.
CREATE TABLE sources (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    brand_id         text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('generic_webhook')),
    network          text        NOT NULL,
    name             text        NOT NULL,
    secret_encrypted bytea       NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sources_by_tenant ON sources (tenant_id, brand_id, created_at DESC);

-- Every mention heard, once per (tenant, brand, network, external id): the de-duplication ledger
-- and the audit copy of what the network sent.
CREATE TABLE mentions (
    id          uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    brand_id    text        NOT NULL,
    source_id   uuid        NOT NULL REFERENCES sources (id),
    network     text        NOT NULL,
    external_id text        NOT NULL,
    created_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    raw         jsonb       NOT NULL,
    UNIQUE (tenant_id, brand_id, network, external_id)
);
CREATE INDEX mentions_received_at ON mentions (received_at);
