-- Top authors, hashtags and terms over a month summed ~720 hourly rows per token; a UTC-day copy
-- of the same counts lets the whole days of a period be read 24 times faster (its partial first
-- and last days still come from `tokens`, so any period in any zone stays exact).
CREATE TABLE tokens_daily (
    tenant_id text   NOT NULL,
    brand_id  text   NOT NULL,
    kind      text   NOT NULL CHECK (kind IN ('author', 'hashtag', 'term')),
    day       date   NOT NULL,  -- the UTC day
    token     text   NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, brand_id, kind, day, token)
);

INSERT INTO tokens_daily (tenant_id, brand_id, kind, day, token, n)
SELECT tenant_id, brand_id, kind, (bucket AT TIME ZONE 'UTC')::date, token, sum(n)
FROM tokens
GROUP BY 1, 2, 3, 4, 5
HAVING sum(n) <> 0;
