-- Listening at agency scale: brands and their versioned listening queries, pull and webhook
-- sources with cursors and leases, one stored item per (network, external id) and one match per
-- (item, tenant, brand), and the posts of ours whose replies we collect.

CREATE TABLE brands (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,
    name       text        NOT NULL,
    timezone   text        NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE queries (
    id         uuid        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    brand_id   text        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('brand', 'competitor')),
    competitor text,
    expression text        NOT NULL,
    version    integer     NOT NULL DEFAULT 1,
    active     boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    FOREIGN KEY (tenant_id, brand_id) REFERENCES brands (tenant_id, id),
    CHECK ((role = 'competitor') = (competitor IS NOT NULL))
);
CREATE INDEX queries_by_brand ON queries (tenant_id, brand_id) WHERE deleted_at IS NULL;
CREATE INDEX queries_changed ON queries (updated_at);

-- Every version a query has had, so a match can always be explained.
CREATE TABLE query_versions (
    query_id   uuid        NOT NULL REFERENCES queries (id),
    version    integer     NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL,
    competitor text,
    expression text        NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query_id, version)
);

-- Sources grow from brand webhooks into every network, pulled or pushed.
ALTER TABLE sources DROP CONSTRAINT sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check
    CHECK (kind IN ('generic_webhook', 'webhook', 'pull'));
ALTER TABLE sources ALTER COLUMN brand_id DROP NOT NULL;
ALTER TABLE sources ALTER COLUMN secret_encrypted DROP NOT NULL;
ALTER TABLE sources
    ADD COLUMN match_mode           text        NOT NULL DEFAULT 'brand'
        CHECK (match_mode IN ('brand', 'queries')),
    ADD COLUMN config               jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN credentials_encrypted bytea,
    ADD COLUMN cursor               jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN interval_s           integer     NOT NULL DEFAULT 300 CHECK (interval_s >= 10),
    ADD COLUMN status               text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paused', 'failing', 'needs_reconnect')),
    ADD COLUMN next_run_at          timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_owner          text,
    ADD COLUMN lease_until          timestamptz,
    ADD COLUMN consecutive_failures integer     NOT NULL DEFAULT 0,
    ADD COLUMN last_run_at          timestamptz,
    ADD COLUMN last_success_at      timestamptz,
    ADD COLUMN last_error           text,
    ADD COLUMN last_error_at        timestamptz,
    ADD COLUMN newest_item_at       timestamptz,
    ADD COLUMN items_total          bigint      NOT NULL DEFAULT 0,
    ADD COLUMN quota_used           bigint      NOT NULL DEFAULT 0,
    ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at           timestamptz;
ALTER TABLE sources ADD CONSTRAINT sources_brand_mode
    CHECK (match_mode = 'queries' OR brand_id IS NOT NULL);
CREATE INDEX sources_due ON sources (next_run_at)
    WHERE kind = 'pull' AND status IN ('active', 'failing') AND deleted_at IS NULL;

-- One row per source run, for items per hour and the error history in the status API.
CREATE TABLE source_runs (
    source_id   uuid        NOT NULL REFERENCES sources (id),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    fetched     integer     NOT NULL,
    stored      integer     NOT NULL,
    skipped     integer     NOT NULL,
    error       text
);
CREATE INDEX source_runs_recent ON source_runs (source_id, finished_at DESC);

-- Items heard, once per (network, external id) whichever source or tenant heard them.
CREATE TABLE items (
    id                 uuid        PRIMARY KEY,
    network            text        NOT NULL,
    external_id        text        NOT NULL,
    kind               text        NOT NULL,
    text               text        NOT NULL,
    url                text,
    language           text,
    created_at         timestamptz NOT NULL,
    edited_at          timestamptz,
    deleted_at         timestamptz,
    author             jsonb       NOT NULL,
    root_external_id   text        NOT NULL,
    parent_external_id text,
    media              jsonb       NOT NULL DEFAULT '[]',
    engagement         jsonb,
    content_hash       text        NOT NULL,
    first_source_id    uuid        NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    raw                jsonb,
    raw_expires_at     timestamptz,
    UNIQUE (network, external_id)
);
CREATE INDEX items_raw_expiry ON items (raw_expires_at) WHERE raw IS NOT NULL;

-- Which brands an item matters to. `mention_id` is the id the brand's events (and inbox) use.
CREATE TABLE item_matches (
    item_id    uuid        NOT NULL REFERENCES items (id),
    tenant_id  text        NOT NULL,
    brand_id   text        NOT NULL,
    mention_id uuid        NOT NULL UNIQUE,
    source_id  uuid        NOT NULL,
    matches    jsonb       NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL,
    matched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, tenant_id, brand_id)
);
CREATE INDEX item_matches_search ON item_matches (tenant_id, brand_id, created_at DESC, mention_id);
CREATE INDEX item_matches_tenant ON item_matches (tenant_id, created_at DESC, mention_id);

-- Our own published posts: replies to them are comments for their brand.
CREATE TABLE tracked_posts (
    network       text        NOT NULL,
    external_id   text        NOT NULL,
    tenant_id     text        NOT NULL,
    brand_id      text        NOT NULL,
    post_id       uuid        NOT NULL,
    channel_id    uuid        NOT NULL,
    url           text,
    published_at  timestamptz NOT NULL,
    track_until   timestamptz NOT NULL,
    replies_cursor jsonb      NOT NULL DEFAULT '{}',
    next_poll_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (network, external_id, tenant_id)
);
CREATE INDEX tracked_posts_due ON tracked_posts (next_poll_at) ;

-- Move the foundation's per-brand mention rows into items and matches.
INSERT INTO items (id, network, external_id, kind, text, url, language, created_at, author,
                   root_external_id, parent_external_id, content_hash, first_source_id,
                   received_at, raw)
SELECT DISTINCT ON (m.network, m.external_id)
       m.id, m.network, m.external_id,
       CASE WHEN m.raw->>'in_reply_to' IS NULL THEN 'mention' ELSE 'reply' END,
       coalesce(m.raw->>'text', ''), m.raw->>'url', m.raw->>'language', m.created_at,
       jsonb_build_object('id', m.raw->'author'->>'id', 'handle', m.raw->'author'->>'handle',
                          'display_name', m.raw->'author'->>'display_name',
                          'followers', m.raw->'author'->'followers'),
       coalesce(m.raw->>'in_reply_to', m.external_id), m.raw->>'in_reply_to',
       md5(m.raw::text), m.source_id, m.received_at, m.raw
FROM mentions m
ORDER BY m.network, m.external_id, m.received_at;

INSERT INTO item_matches (item_id, tenant_id, brand_id, mention_id, source_id, created_at,
                          matched_at)
SELECT i.id, m.tenant_id, m.brand_id, m.id, m.source_id, m.created_at, m.received_at
FROM mentions m JOIN items i ON (i.network, i.external_id) = (m.network, m.external_id);

DROP TABLE mentions;

INSERT INTO brands (tenant_id, id, name)
SELECT DISTINCT tenant_id, brand_id, brand_id FROM sources WHERE brand_id IS NOT NULL
ON CONFLICT DO NOTHING;

-- Mention search by words (any language: the 'simple' configuration does not stem).
CREATE INDEX items_text_search ON items USING gin (to_tsvector('simple', text));
