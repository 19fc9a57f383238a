-- Conversations waiting in a team's queue (nobody had room, or their agent left): the clock job
-- hands them to whoever has room now, walking this small index.
CREATE INDEX conversations_team_queue ON conversations (tenant_id, created_at)
    WHERE assignee_id IS NULL AND team_id IS NOT NULL AND status IN ('new', 'open');
