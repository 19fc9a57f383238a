-- Publishing: brands' publishing settings, channels with encrypted credentials and queue slots,
-- posts with one delivery per channel (the unit the dispatcher publishes exactly once), every
-- attempt recorded before the network call, and the approval audit trail.

CREATE TABLE brand_settings (
    tenant_id  text        NOT NULL,
    brand_id   text        NOT NULL,
    timezone   text        NOT NULL DEFAULT 'UTC',
    approval   text        NOT NULL DEFAULT 'none'
        CHECK (approval IN ('none', 'internal', 'internal_client')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, brand_id)
);

CREATE TABLE channels (
    id                    uuid        PRIMARY KEY,
    tenant_id             text        NOT NULL,
    brand_id              text        NOT NULL,
    network               text        NOT NULL,
    name                  text        NOT NULL,
    config                jsonb       NOT NULL DEFAULT '{}',
    overrides             jsonb       NOT NULL DEFAULT '{}',
    credentials_encrypted bytea,
    status                text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paused', 'needs_reconnect')),
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE INDEX channels_by_brand ON channels (tenant_id, brand_id) WHERE deleted_at IS NULL;

CREATE TABLE channel_slots (
    channel_id uuid     NOT NULL REFERENCES channels (id),
    weekday    smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    local_time time     NOT NULL,
    PRIMARY KEY (channel_id, weekday, local_time)
);

CREATE TABLE posts (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    brand_id     text        NOT NULL,
    status       text        NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'pending_internal', 'pending_client', 'rejected', 'approved',
                          'scheduled', 'published', 'partially_published', 'failed',
                          'cancelled')),
    tags         text[]      NOT NULL DEFAULT '{}',
    notes        text,
    scheduled_at timestamptz,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_calendar ON posts (tenant_id, brand_id, scheduled_at);

-- One per (post, channel), or one per reply the inbox asked for (post_id NULL).
CREATE TABLE deliveries (
    id               uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    post_id          uuid        REFERENCES posts (id),
    channel_id       uuid        NOT NULL REFERENCES channels (id),
    kind             text        NOT NULL CHECK (kind IN ('post', 'reply')),
    text             text        NOT NULL,
    media            jsonb       NOT NULL DEFAULT '[]',
    link             text,
    reply_to         text,
    request_id       uuid        UNIQUE,
    status           text        NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'scheduled', 'publishing', 'unknown', 'published', 'failed',
                          'cancelled')),
    due_at           timestamptz,
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    attempts         integer     NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    remote_id        text,
    url              text,
    last_error       text,
    published_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('scheduled', 'publishing', 'unknown');
CREATE INDEX deliveries_of_post ON deliveries (post_id);
CREATE INDEX deliveries_queue ON deliveries (channel_id, due_at) WHERE status <> 'cancelled';

CREATE TABLE attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     uuid        NOT NULL REFERENCES deliveries (id),
    number          integer     NOT NULL,
    idempotency_key text        NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    outcome         text,
    detail          text,
    remote_id       text,
    UNIQUE (delivery_id, number)
);

CREATE TABLE post_audit (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id uuid        NOT NULL REFERENCES posts (id),
    actor   text        NOT NULL,
    role    text        NOT NULL,
    action  text        NOT NULL,
    comment text,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX post_audit_by_post ON post_audit (post_id, at);
