-- 0010: agents outlive the boot that launched them. A run records the boot that launched it
-- and, when a later boot took it over instead of launching it again, the boot that adopted it.
ALTER TABLE agent_runs ADD COLUMN boot_id TEXT;
ALTER TABLE agent_runs ADD COLUMN adopted_by TEXT;
