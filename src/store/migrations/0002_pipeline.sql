-- 0002: what the pipeline needs — a task's labels, branch and in-stage state, the per-prefix
-- id counters of the local tracker, and the job-claim index that skips paused tasks.

ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';      -- JSON array of strings
ALTER TABLE tasks ADD COLUMN branch TEXT;
ALTER TABLE tasks ADD COLUMN phase TEXT NOT NULL DEFAULT 'idle' CHECK (phase IN (
    'idle', 'working', 'gating', 'awaiting-approval', 'awaiting-deploy-confirm', 'merging',
    'blocked'));
ALTER TABLE tasks ADD COLUMN blocked_reason TEXT;
ALTER TABLE tasks ADD COLUMN developer_retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN stage_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN note TEXT;

-- The local tracker numbers tasks per prefix; a number is never handed out twice.
CREATE TABLE work_item_counters (
    prefix  TEXT PRIMARY KEY,
    last    INTEGER NOT NULL
);
