-- 0012: the merge queue. A task whose testing passed waits in its repository's queue
-- (phase 'queued'); the queue's owner, the `merge-queue` actor, journals here who waits in
-- what order, who holds the lease and on which candidate, and each repository's freeze.
--
-- The phase CHECK of `tasks` gains the phases of the merge queue and of the admission, budget
-- and question waits to come; SQLite cannot change a CHECK in place, so the table is rebuilt
-- (same columns, same order, same ids: the rows that reference it stay valid, and the
-- deferred foreign-key check at COMMIT proves it).
PRAGMA defer_foreign_keys = ON;

CREATE TABLE tasks_rebuilt (
    id            INTEGER PRIMARY KEY,
    work_item_id  TEXT    NOT NULL UNIQUE,
    repo          TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    stage         TEXT    NOT NULL DEFAULT 'created' CHECK (stage IN (
                      'created', 'analysis', 'architecture', 'development', 'review',
                      'testing', 'deploy-staging', 'deploy', 'done', 'cancelled')),
    paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    labels        TEXT    NOT NULL DEFAULT '[]',
    branch        TEXT,
    phase         TEXT    NOT NULL DEFAULT 'idle' CHECK (phase IN (
                      'idle', 'working', 'gating', 'awaiting-approval',
                      'awaiting-deploy-confirm', 'queued', 'merging', 'blocked',
                      'waiting', 'awaiting-budget', 'needs-input')),
    blocked_reason TEXT,
    developer_retries INTEGER NOT NULL DEFAULT 0,
    stage_attempts INTEGER NOT NULL DEFAULT 0,
    note          TEXT
);
INSERT INTO tasks_rebuilt (id, work_item_id, repo, title, description, stage, paused,
    created_at, updated_at, labels, branch, phase, blocked_reason, developer_retries,
    stage_attempts, note)
SELECT id, work_item_id, repo, title, description, stage, paused, created_at, updated_at,
    labels, branch, phase, blocked_reason, developer_retries, stage_attempts, note
FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_rebuilt RENAME TO tasks;
CREATE INDEX tasks_active ON tasks (stage) WHERE stage NOT IN ('done', 'cancelled');
CREATE INDEX tasks_branch ON tasks (repo, branch);

-- One row per task in a repository's merge queue, in arrival order (`seq`). The holder is
-- the row whose state is neither 'waiting' nor 'merged'; `candidate` is the commit it tests
-- and deploys, `base` the `main` it was built on; `ready` says its task passed its deploy
-- stages and asked for the fast-forward. A 'merged' row stays until its task leaves.
CREATE TABLE merge_queue (
    work_item_id TEXT    PRIMARY KEY REFERENCES tasks (work_item_id),
    repo         TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'waiting' CHECK (state IN (
                     'waiting', 'building', 'testing', 'deploying', 'merging', 'merged')),
    candidate    TEXT,
    base         TEXT,
    ready        INTEGER NOT NULL DEFAULT 0 CHECK (ready IN (0, 1)),
    joined_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX merge_queue_by_repo ON merge_queue (repo, seq);

-- Each repository's queue: frozen (by whom, why, since when; 'main-red' when the runaway
-- guard froze it) and the last `main` seen green.
CREATE TABLE merge_queue_repos (
    repo            TEXT PRIMARY KEY,
    frozen_kind     TEXT CHECK (frozen_kind IN ('operator', 'main-red')),
    frozen_by       TEXT,
    frozen_reason   TEXT,
    frozen_at       TEXT,
    last_green_main TEXT
);

-- Append-only: what the queue decided, with who and why (freezes, thaws, merges, bounces).
CREATE TABLE merge_queue_journal (
    id           INTEGER PRIMARY KEY,
    repo         TEXT NOT NULL,
    work_item_id TEXT,
    what         TEXT NOT NULL,
    by           TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX merge_queue_journal_by_repo ON merge_queue_journal (repo, id);
