-- Comments hidden at the inbox's request: a delivery of kind 'hide' names the network id of the
-- comment to hide and, like a reply, the inbox's request id (unique, so a redelivered request
-- queues nothing twice). It ends 'published' once the network hides the comment, or 'failed'.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('post', 'reply', 'hide'));

ALTER TABLE deliveries ADD COLUMN target_external_id text;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_hide_target_check
    CHECK (kind <> 'hide'
           OR (target_external_id IS NOT NULL AND request_id IS NOT NULL AND post_id IS NULL));
