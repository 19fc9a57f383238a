-- Inbox items: one per mention heard for a brand. The id is ingest's mention id.
CREATE TABLE items (
    id                  uuid        PRIMARY KEY,
    tenant_id           text        NOT NULL,
    brand_id            text        NOT NULL,
    source_id           uuid        NOT NULL,
    network             text        NOT NULL,
    external_id         text        NOT NULL,
    kind                text        NOT NULL,
    text                text        NOT NULL,
    url                 text,
    language            text,
    author_id           text        NOT NULL,
    author_handle       text        NOT NULL,
    author_display_name text,
    author_followers    integer,
    thread_root_id      text        NOT NULL,
    parent_external_id  text,
    created_at          timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    event_id            uuid        NOT NULL,
    UNIQUE (tenant_id, brand_id, network, external_id)
);

-- Newest-first keyset pagination, per tenant and per tenant + brand.
CREATE INDEX items_newest ON items (tenant_id, created_at DESC, id DESC);
CREATE INDEX items_brand_newest ON items (tenant_id, brand_id, created_at DESC, id DESC);
