-- Items follow their network: an edit updates the text, a deletion marks the item.
ALTER TABLE items ADD COLUMN edited_at timestamptz;
ALTER TABLE items ADD COLUMN deleted_at timestamptz;
