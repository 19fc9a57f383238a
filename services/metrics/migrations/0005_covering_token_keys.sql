-- Top authors, hashtags and terms read (token, n) for a brand's time range. With `n` in the key
-- index the read is an index-only scan of the range instead of one heap page per row (measured:
-- top authors over 30 days at 10M mentions went from one heap page per row to the index pages).
ALTER TABLE tokens DROP CONSTRAINT tokens_pkey,
    ADD CONSTRAINT tokens_pkey PRIMARY KEY (tenant_id, brand_id, kind, bucket, token) INCLUDE (n);
ALTER TABLE tokens_daily DROP CONSTRAINT tokens_daily_pkey,
    ADD CONSTRAINT tokens_daily_pkey PRIMARY KEY (tenant_id, brand_id, kind, day, token) INCLUDE (n);
