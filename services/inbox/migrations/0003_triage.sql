-- Every item is triaged when it arrives; the result and the signals that set its priority are
-- kept so the inbox can sort by urgency and show why.
ALTER TABLE items
    ADD COLUMN sentiment       text,
    ADD COLUMN sentiment_score real,
    ADD COLUMN intent          text,
    ADD COLUMN spam            boolean NOT NULL DEFAULT false,
    ADD COLUMN priority        smallint NOT NULL DEFAULT 0,
    ADD COLUMN level           text NOT NULL DEFAULT 'normal',
    ADD COLUMN signals         jsonb NOT NULL DEFAULT '[]';

-- The default agent view: the most urgent first.
CREATE INDEX items_by_priority ON items (tenant_id, priority DESC, created_at DESC, id DESC);
