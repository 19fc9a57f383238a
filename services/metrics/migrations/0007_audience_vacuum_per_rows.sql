-- The audience reads are index-only scans (0006), which skip the heap only on pages the visibility
-- map marks all-visible, and only vacuum sets it. By default an insert-driven autovacuum waits
-- for new rows worth 20 % of the table: on a table holding a year of channel-hours that is ~73
-- days of hours, so the recent month a dashboard shows would mostly be read from the heap. A
-- vacuum every 10,000 new channel-hours keeps the settled hours all-visible; each pass only
-- visits the heap pages written since the last one.
ALTER TABLE audience_hourly SET (
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0
);
