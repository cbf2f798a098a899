-- 0003: what real agents need — the identity of a job's process (pid + start time, so a
-- reused pid is never mistaken for it), the queue park of a usage limit, and the local
-- forge's pull requests.

ALTER TABLE jobs ADD COLUMN pid_start INTEGER;   -- clock ticks after boot, /proc/<pid>/stat

-- A queued job carries no trace of a previous run. The table's CHECK covers the original
-- columns; these triggers cover the new one and every path that writes a row.
CREATE TRIGGER jobs_queued_is_clean_insert BEFORE INSERT ON jobs
    WHEN NEW.status = 'queued' AND NEW.pid_start IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a queued job must not carry a process start time');
END;
CREATE TRIGGER jobs_queued_is_clean_update BEFORE UPDATE ON jobs
    WHEN NEW.status = 'queued' AND NEW.pid_start IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a queued job must not carry a process start time');
END;

-- The whole queue waits until `until_at` (a usage limit resets then). One row at most.
CREATE TABLE queue_park (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    until_at  TEXT NOT NULL,                -- RFC 3339 UTC, same format as jobs.available_at
    reason    TEXT NOT NULL,
    parked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The local forge's pull requests: at most one open per repository and head branch.
CREATE TABLE pull_requests (
    id         INTEGER PRIMARY KEY,          -- the PR number
    repo       TEXT NOT NULL,
    head       TEXT NOT NULL,
    base       TEXT NOT NULL,
    title      TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'merged', 'closed')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX pull_requests_one_open ON pull_requests (repo, head) WHERE state = 'open';
