-- 0013: a task's own spend cap, set by the operator (`POST /tasks/{id}/budget`), in whole
-- nano-dollars so it compares exactly with the sum of its runs' costs. NULL: the task
-- follows its project's cap (`budget_usd`, else ORCH_TASK_BUDGET_USD), if any.
ALTER TABLE tasks ADD COLUMN budget_nano_usd INTEGER
    CHECK (budget_nano_usd IS NULL OR budget_nano_usd > 0);
