-- 0009: a task's latest job (what a restarted task actor and the job snapshot ask for) was
-- found by scanning every job ever queued: only active jobs had an index by task. With this
-- one, looking up a task's jobs reads that task's rows only, however long the queue's history.
CREATE INDEX jobs_by_task ON jobs (task_id, id);
