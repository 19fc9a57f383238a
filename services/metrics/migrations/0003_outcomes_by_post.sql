-- A post's outcomes by its id: top posts look up where each post was published.
CREATE INDEX post_outcomes_post ON post_outcomes (tenant_id, post_id);
