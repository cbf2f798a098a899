-- 0001: the initial schema. Timestamps are RFC 3339 UTC text with milliseconds, so they sort
-- lexically and read well in the sqlite3 shell.

CREATE TABLE tasks (
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
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Startup recovery asks for every non-terminal task.
CREATE INDEX tasks_active ON tasks (stage) WHERE stage NOT IN ('done', 'cancelled');

-- Append-only stage journal: rows are never updated or deleted.
CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY,
    task_id     INTEGER NOT NULL REFERENCES tasks (id) ON DELETE RESTRICT,
    from_stage  TEXT,
    to_stage    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX transitions_by_task ON transitions (task_id, id);
CREATE TRIGGER transitions_append_only_update BEFORE UPDATE ON transitions
BEGIN SELECT RAISE(ABORT, 'transitions is append-only'); END;
CREATE TRIGGER transitions_append_only_delete BEFORE DELETE ON transitions
BEGIN SELECT RAISE(ABORT, 'transitions is append-only'); END;

-- Every inbound webhook or API event; the dedup key makes a redelivery a no-op.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,            -- plane | gitea | api | cli
    kind          TEXT NOT NULL,            -- e.g. issue.updated, pull_request.merged
    dedup_key     TEXT NOT NULL UNIQUE,
    work_item_id  TEXT,
    payload       TEXT NOT NULL,            -- the raw body as received
    received_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    processed_at  TEXT,
    error         TEXT
);

-- The durable job queue. A queued job carries no trace of a previous run.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    task_id       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE RESTRICT,
    stage         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    transient_attempts INTEGER NOT NULL DEFAULT 0,
    task_text     TEXT    NOT NULL DEFAULT '',
    available_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    pid           INTEGER,
    boot_id       TEXT,
    run_id        TEXT,
    started_at    TEXT,
    finished_at   TEXT,
    last_error    TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (status <> 'queued' OR (pid IS NULL AND boot_id IS NULL AND run_id IS NULL AND started_at IS NULL))
);
CREATE INDEX jobs_claimable ON jobs (status, priority DESC, available_at, id);
-- At most one active (queued or running) job per task.
CREATE UNIQUE INDEX jobs_one_active_per_task ON jobs (task_id)
    WHERE status IN ('queued', 'running');

-- One row per agent process run, with its usage and cost.
CREATE TABLE agent_runs (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT    NOT NULL UNIQUE,
    job_id        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE RESTRICT,
    task_id       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE RESTRICT,
    stage         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    model         TEXT,
    log_path      TEXT    NOT NULL,
    started_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT,
    exit_code     INTEGER,
    outcome       TEXT,                     -- succeeded | failed | timeout | transient
    reason        TEXT,
    subtype       TEXT,
    is_error      INTEGER CHECK (is_error IN (0, 1)),
    num_turns     INTEGER,
    duration_ms   INTEGER,
    session_id    TEXT,
    input_tokens          INTEGER NOT NULL DEFAULT 0,
    output_tokens         INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL    NOT NULL DEFAULT 0
);
CREATE INDEX agent_runs_by_task ON agent_runs (task_id, id);
CREATE INDEX agent_runs_by_job ON agent_runs (job_id);
