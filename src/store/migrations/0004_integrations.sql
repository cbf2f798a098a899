-- 0004: what the Plane and Gitea integrations need — webhook deliveries deduplicated by
-- body hash as well as by delivery id, the link between a task and its tracker issue, and
-- the head commit of each pushed branch (a Gitea `status` event names only a sha).

-- Plane sends a fresh delivery id on every retry of the same payload, so a replay is only
-- recognisable by its body: hash it and look back over a window.
ALTER TABLE events ADD COLUMN body_hash TEXT;
ALTER TABLE events ADD COLUMN outcome TEXT;  -- what the intake did with it, in words
CREATE INDEX events_body_hash ON events (source, body_hash, received_at);

-- A task created from a tracker issue; one task per issue, one issue per task.
CREATE TABLE task_links (
    work_item_id TEXT PRIMARY KEY REFERENCES tasks (work_item_id),
    tracker      TEXT NOT NULL,             -- plane
    project_ref  TEXT NOT NULL,             -- the tracker's project id
    issue_ref    TEXT NOT NULL,             -- the tracker's issue id
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tracker, issue_ref)
);

-- The commit each branch was last pushed at, by the orchestrator or seen in a push event.
CREATE TABLE branch_heads (
    repo       TEXT NOT NULL,
    branch     TEXT NOT NULL,
    sha        TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (repo, branch)
);
CREATE INDEX branch_heads_sha ON branch_heads (sha);

CREATE INDEX tasks_branch ON tasks (repo, branch);
