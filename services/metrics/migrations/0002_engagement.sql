-- Engagement of our posts, the channels' audience, and per-channel schedules (docs/metrics.md).

-- The latest counters of each post of ours per channel (post.engagement_updated): a newer
-- measured_at replaces the row, an older one (late or redelivered) never does.
CREATE TABLE post_engagement (
    tenant_id   text        NOT NULL,
    post_id     uuid        NOT NULL,
    channel_id  uuid        NOT NULL,
    brand_id    text        NOT NULL,
    network     text        NOT NULL,
    external_id text        NOT NULL,
    likes       bigint,
    reposts     bigint,
    replies     bigint,
    views       bigint,
    followers   bigint,               -- the channel's audience at measured_at
    engagement  bigint GENERATED ALWAYS AS
                    (coalesce(likes, 0) + coalesce(reposts, 0) + coalesce(replies, 0)) STORED,
    measured_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, post_id, channel_id)
);

-- Each channel's followers, the last measurement of every UTC hour: day, week and month buckets
-- take the last hour they hold.
CREATE TABLE audience_hourly (
    tenant_id   text        NOT NULL,
    brand_id    text        NOT NULL,
    channel_id  uuid        NOT NULL,
    bucket      timestamptz NOT NULL,
    network     text        NOT NULL,
    followers   bigint      NOT NULL,
    measured_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, brand_id, channel_id, bucket)
);
CREATE INDEX audience_hourly_period ON audience_hourly (tenant_id, brand_id, bucket);

-- A post's latest scheduled time on one channel (post.scheduled with channel_id). Events without a
-- channel keep feeding post_schedules.
CREATE TABLE channel_schedules (
    tenant_id    text        NOT NULL,
    post_id      uuid        NOT NULL,
    channel_id   uuid        NOT NULL,
    brand_id     text        NOT NULL,
    network      text        NOT NULL,
    scheduled_at timestamptz NOT NULL,
    cancelled    boolean     NOT NULL DEFAULT false,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, post_id, channel_id)
);
CREATE INDEX channel_schedules_period ON channel_schedules (tenant_id, brand_id, scheduled_at);
