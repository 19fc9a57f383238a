-- A brand's audience over a period (the API's audience, the dashboard's followers panel) reads
-- every channel-hour of the range: 1,440 rows for 30 days of two channels, which the rollup
-- writes hour by hour across all brands, so each sits on its own heap page. With the read
-- columns in the period index the read is an index-only scan of the range's few index pages.
DROP INDEX audience_hourly_period;
CREATE INDEX audience_hourly_period ON audience_hourly (tenant_id, brand_id, bucket)
    INCLUDE (channel_id, network, followers, measured_at);
