-- The inbox workflow: conversations (one per thread) with status, assignment and the SLA clock;
-- teams and members; the tenant's rules; saved replies; brand settings (hours, holidays, SLA,
-- VIP authors, reply channels); notes, replies, hide requests and each conversation's activity.

CREATE TABLE conversations (
    id                uuid        PRIMARY KEY,
    tenant_id         text        NOT NULL,
    brand_id          text        NOT NULL,
    network           text        NOT NULL,
    thread_root_id    text        NOT NULL,
    status            text        NOT NULL DEFAULT 'new'
                      CHECK (status IN ('new', 'open', 'pending', 'snoozed', 'closed')),
    snoozed_until     timestamptz,
    assignee_id       text,
    team_id           text,
    priority          smallint    NOT NULL DEFAULT 0,
    level             text        NOT NULL DEFAULT 'normal',
    -- The running SLA clock: which response is due, when it started, when it turns amber, when
    -- it breaches. 'met' keeps the last answered clock's figures; 'none' means nothing is due.
    sla_kind          text        CHECK (sla_kind IN ('first', 'next')),
    sla_started_at    timestamptz,
    near_due_at       timestamptz,
    due_at            timestamptz,
    sla_state         text        NOT NULL DEFAULT 'none'
                      CHECK (sla_state IN ('none', 'ok', 'near_breach', 'breached', 'met')),
    first_response_at timestamptz,
    first_response_s  double precision,
    last_author_at    timestamptz,
    last_reply_at     timestamptz,
    item_count        integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, brand_id, network, thread_root_id)
);

-- The SLA job's two questions, and the snooze wake-up: each walks a small partial index.
CREATE INDEX conversations_due ON conversations (due_at) WHERE sla_state IN ('ok', 'near_breach');
CREATE INDEX conversations_near_due ON conversations (near_due_at) WHERE sla_state = 'ok';
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE status = 'snoozed';
-- Open load per member, for least-loaded assignment and capacity.
CREATE INDEX conversations_assignee_load ON conversations (tenant_id, assignee_id)
    WHERE status IN ('new', 'open', 'pending');

-- Items carry a copy of their conversation's status, assignment and SLA so the agent list is one
-- index walk on one table, whatever the filters.
ALTER TABLE items
    ADD COLUMN conversation_id uuid,
    ADD COLUMN status          text NOT NULL DEFAULT 'new',
    ADD COLUMN assignee_id     text,
    ADD COLUMN team_id         text,
    ADD COLUMN due_at          timestamptz,
    ADD COLUMN sla_state       text NOT NULL DEFAULT 'none',
    ADD COLUMN tags            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rule_ids        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN hidden_at       timestamptz,
    ADD COLUMN claimed_by      text,
    ADD COLUMN claimed_at      timestamptz,
    ADD COLUMN claim_expires_at timestamptz,
    ADD COLUMN search          tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;

-- Items stored before conversations existed get one conversation per thread.
INSERT INTO conversations (id, tenant_id, brand_id, network, thread_root_id, item_count,
                           priority, level, last_author_at, created_at)
SELECT gen_random_uuid(), tenant_id, brand_id, network, thread_root_id, count(*), max(priority),
       'normal', max(received_at), min(received_at)
FROM items
GROUP BY tenant_id, brand_id, network, thread_root_id;
UPDATE items i SET conversation_id = c.id
FROM conversations c
WHERE c.tenant_id = i.tenant_id AND c.brand_id = i.brand_id AND c.network = i.network
  AND c.thread_root_id = i.thread_root_id;
ALTER TABLE items ALTER COLUMN conversation_id SET NOT NULL;
ALTER TABLE items ADD FOREIGN KEY (conversation_id) REFERENCES conversations (id);

CREATE INDEX items_conversation ON items (conversation_id, created_at);
-- The agent views: a status (or a person's queue) by urgency, by brand, by due time.
CREATE INDEX items_status_priority ON items (tenant_id, status, priority DESC, created_at DESC, id DESC);
CREATE INDEX items_assignee_priority
    ON items (tenant_id, assignee_id, status, priority DESC, created_at DESC, id DESC)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX items_brand_priority ON items (tenant_id, brand_id, priority DESC, created_at DESC, id DESC);
CREATE INDEX items_due ON items (tenant_id, (COALESCE(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX items_search ON items USING gin (search);
CREATE INDEX items_tags ON items USING gin (tags);

CREATE TABLE members (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,  -- the agent's token subject
    name       text        NOT NULL DEFAULT '',
    languages  text[]      NOT NULL DEFAULT '{}',
    capacity   integer     NOT NULL DEFAULT 10 CHECK (capacity >= 0),
    available  boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE teams (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    strategy      text        NOT NULL DEFAULT 'round_robin'
                  CHECK (strategy IN ('round_robin', 'least_loaded')),
    brands        text[],     -- NULL: the team answers for every brand
    last_assigned text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE team_members (
    tenant_id text    NOT NULL,
    team_id   text    NOT NULL,
    member_id text    NOT NULL,
    position  integer NOT NULL,
    PRIMARY KEY (tenant_id, team_id, member_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, member_id) REFERENCES members (tenant_id, id) ON DELETE CASCADE
);

-- A tenant's ordered rules as one document: editing bumps the version, and every inbox replica
-- recompiles when it sees a new one.
CREATE TABLE rule_sets (
    tenant_id  text        PRIMARY KEY,
    rules      jsonb       NOT NULL DEFAULT '[]',
    version    bigint      NOT NULL DEFAULT 1,
    updated_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE saved_replies (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,
    brand_id   text,       -- NULL: usable for every brand
    name       text        NOT NULL,
    text       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- Per brand: time zone, business hours, holidays, SLA policies, VIP authors, escalation
-- keywords, the channel that answers on each network. A brand without a row uses the defaults.
CREATE TABLE brand_settings (
    tenant_id  text        NOT NULL,
    brand_id   text        NOT NULL,
    settings   jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, brand_id)
);

CREATE TABLE notes (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    conversation_id uuid        NOT NULL REFERENCES conversations (id),
    item_id         uuid        REFERENCES items (id),
    author_id       text        NOT NULL,
    text            text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_conversation ON notes (conversation_id, created_at);

-- Replies the inbox asked the publisher for (id = the request id), and their outcome.
CREATE TABLE replies (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    item_id         uuid        NOT NULL REFERENCES items (id),
    conversation_id uuid        NOT NULL REFERENCES conversations (id),
    channel_id      uuid,
    text            text        NOT NULL,
    requested_by    text        NOT NULL,
    saved_reply_id  text,
    status          text        NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'published', 'failed')),
    external_id     text,
    url             text,
    error           text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX replies_item ON replies (item_id, requested_at);

CREATE TABLE hide_requests (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    item_id      uuid        NOT NULL REFERENCES items (id),
    channel_id   uuid,
    requested_by text        NOT NULL,
    status       text        NOT NULL DEFAULT 'requested'
                 CHECK (status IN ('requested', 'hidden', 'failed')),
    error        text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX hide_requests_item ON hide_requests (item_id);

-- What happened to a conversation and who did it: shown on the conversation, kept for audit.
CREATE TABLE activity (
    id              bigserial   PRIMARY KEY,
    tenant_id       text        NOT NULL,
    conversation_id uuid        NOT NULL REFERENCES conversations (id),
    item_id         uuid,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    kind            text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_conversation ON activity (conversation_id, id);
