-- Drafts can be deleted (kept for the audit trail), and channels remember when their credentials
-- expire so they are refreshed in time.
ALTER TABLE posts DROP CONSTRAINT posts_status_check;
ALTER TABLE posts ADD CONSTRAINT posts_status_check
    CHECK (status IN ('draft', 'pending_internal', 'pending_client', 'rejected', 'approved',
                      'scheduled', 'published', 'partially_published', 'failed', 'cancelled',
                      'deleted'));
CREATE INDEX posts_listing ON posts (tenant_id, brand_id, created_at DESC, id DESC);

ALTER TABLE channels ADD COLUMN credentials_expire_at timestamptz;
ALTER TABLE channels ADD COLUMN credentials_checked_at timestamptz;
CREATE INDEX channels_expiring ON channels (credentials_expire_at)
    WHERE status = 'active' AND deleted_at IS NULL;
