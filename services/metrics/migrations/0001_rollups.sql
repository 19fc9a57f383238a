-- Rollups of every topic, updated by the idempotent batch consumers (docs/metrics.md).

-- One row per mention a brand heard (mention_id is unique per item and brand), with what the
-- rollups count of it. It is what makes edits, late triage and deletions exact: a batch takes
-- each touched mention's contribution out of the counters and puts the new one back.
CREATE TABLE mention_facts (
    tenant_id          text        NOT NULL,
    mention_id         uuid        NOT NULL,
    brand_id           text,
    network            text,
    kind               text,
    language           text,
    author_id          text,
    bucket             timestamptz,          -- UTC hour of created_at
    replies_to_post_id uuid,
    sov                text[]      NOT NULL DEFAULT '{}',
    hashtags           text[]      NOT NULL DEFAULT '{}',
    terms              text[]      NOT NULL DEFAULT '{}',
    engagement         jsonb,
    sentiment          text,                 -- from inbox's item.triaged
    intent             text,
    received           boolean     NOT NULL DEFAULT false,
    deleted            boolean     NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, mention_id)
);

-- Additive counters per tenant / brand / metric / dimension value / network / UTC hour.
-- metric: mentions (dimension all|sentiment|intent|language|kind|sov), engagement
-- (likes|reposts|replies|views), post_replies (value = our post id), inbox (sla_met,
-- sla_breached, replies, created), posts (published|failed|on_time|late, value = channel id).
CREATE TABLE hourly (
    tenant_id text        NOT NULL,
    brand_id  text        NOT NULL,
    metric    text        NOT NULL,
    dimension text        NOT NULL,
    bucket    timestamptz NOT NULL,
    network   text        NOT NULL,
    value     text        NOT NULL,
    n         bigint      NOT NULL,
    PRIMARY KEY (tenant_id, brand_id, metric, dimension, bucket, network, value)
);

-- Mentions per author, hashtag and term per UTC hour: unique authors over any range are an exact
-- COUNT(DISTINCT token), and top-N lists an exact sum.
CREATE TABLE tokens (
    tenant_id text        NOT NULL,
    brand_id  text        NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('author', 'hashtag', 'term')),
    bucket    timestamptz NOT NULL,
    token     text        NOT NULL,
    n         bigint      NOT NULL,
    PRIMARY KEY (tenant_id, brand_id, kind, bucket, token)
);

-- Every published answer (item.replied): medians and p90 are computed from the durations.
CREATE TABLE responses (
    event_id         uuid             PRIMARY KEY,
    tenant_id        text             NOT NULL,
    brand_id         text             NOT NULL,
    network          text             NOT NULL,
    conversation_id  uuid             NOT NULL,
    replied_at       timestamptz      NOT NULL,
    response_kind    text,
    response_s       double precision,
    first_response_s double precision,
    member_id        text,
    team_id          text,
    sla_state        text
);
CREATE INDEX responses_period ON responses (tenant_id, brand_id, replied_at);

-- Each conversation's latest status and priority level, for the backlog.
CREATE TABLE conversations (
    tenant_id       text        NOT NULL,
    conversation_id uuid        NOT NULL,
    brand_id        text        NOT NULL,
    network         text        NOT NULL,
    status          text        NOT NULL,
    level           text        NOT NULL,
    priority        integer     NOT NULL,
    assignee_id     text,
    team_id         text,
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX conversations_backlog ON conversations (tenant_id, brand_id, status, level);

-- A post's latest scheduled time (post.scheduled), remembered for lateness and counted as scheduled.
CREATE TABLE post_schedules (
    tenant_id    text        NOT NULL,
    post_id      uuid        NOT NULL,
    brand_id     text        NOT NULL,
    scheduled_at timestamptz NOT NULL,
    cancelled    boolean     NOT NULL DEFAULT false,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, post_id)
);
CREATE INDEX post_schedules_period ON post_schedules (tenant_id, brand_id, scheduled_at);

-- Each channel outcome of a post (post.published / post.failed).
CREATE TABLE post_outcomes (
    event_id     uuid             PRIMARY KEY,
    tenant_id    text             NOT NULL,
    brand_id     text             NOT NULL,
    post_id      uuid             NOT NULL,
    channel_id   uuid,
    network      text             NOT NULL,
    outcome      text             NOT NULL CHECK (outcome IN ('published', 'failed')),
    at           timestamptz      NOT NULL,
    external_id  text,
    url          text,
    scheduled_at timestamptz,
    lateness_s   double precision,
    error        text
);
CREATE INDEX post_outcomes_period ON post_outcomes (tenant_id, brand_id, at);

-- The zone a brand's reports use unless a request names one (ingest emits no brand event).
CREATE TABLE brand_reporting (
    tenant_id  text        NOT NULL,
    brand_id   text        NOT NULL,
    timezone   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, brand_id)
);

-- Every SLA breach (item.sla_breached), with whose conversation it was.
CREATE TABLE sla_breaches (
    event_id        uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    brand_id        text        NOT NULL,
    network         text        NOT NULL,
    conversation_id uuid        NOT NULL,
    breached_at     timestamptz NOT NULL,
    member_id       text,
    team_id         text
);
CREATE INDEX sla_breaches_period ON sla_breaches (tenant_id, brand_id, breached_at);
