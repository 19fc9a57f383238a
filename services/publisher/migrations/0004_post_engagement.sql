-- The engagement job's ledger: one row per published post delivery, with the counters last
-- measured on the network (NULL until measured, or when the network does not report one), when to
-- measure again, and a lease so replicas share the work. A post that is gone from the network
-- stops being measured (next_check_at NULL).
CREATE TABLE post_engagement (
    delivery_id   uuid        PRIMARY KEY REFERENCES deliveries (id),
    tenant_id     text        NOT NULL,
    channel_id    uuid        NOT NULL REFERENCES channels (id),
    published_at  timestamptz NOT NULL,
    likes         bigint,
    reposts       bigint,
    replies       bigint,
    views         bigint,
    followers     bigint,
    measured_at   timestamptz,
    next_check_at timestamptz DEFAULT now(),
    lease_owner   text,
    lease_until   timestamptz,
    failures      integer     NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX post_engagement_due ON post_engagement (next_check_at, published_at)
    WHERE next_check_at IS NOT NULL;

-- Posts published before this ledger existed are measured too.
INSERT INTO post_engagement (delivery_id, tenant_id, channel_id, published_at)
SELECT id, tenant_id, channel_id, published_at FROM deliveries
WHERE kind = 'post' AND status = 'published' AND remote_id IS NOT NULL
  AND published_at IS NOT NULL
ON CONFLICT DO NOTHING;
