-- Which of our published posts a brand's mention replies to, kept with the match: an edit then
-- re-emits the link, and a reply heard before its post.published is linked once when it arrives.
ALTER TABLE item_matches ADD COLUMN replies_to_post_id uuid;

-- post.published looks up the stored replies of a post by thread root and by parent.
CREATE INDEX items_by_thread_root ON items (network, root_external_id);
CREATE INDEX items_by_parent ON items (network, parent_external_id)
    WHERE parent_external_id IS NOT NULL;

-- Replies stored so far: the link their thread implies (most were emitted with it; an edit
-- would otherwise emit them unlinked).
UPDATE item_matches m SET replies_to_post_id = t.post_id
FROM tracked_posts t, items i
WHERE i.network = t.network
  AND (i.root_external_id = t.external_id OR i.parent_external_id = t.external_id)
  AND m.item_id = i.id AND m.tenant_id = t.tenant_id AND m.brand_id = t.brand_id;
