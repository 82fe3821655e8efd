-- Transactional checkpoints put job_cursors to use: an iterable job whose
-- items commit with their cursor keeps here what exactly-once needs (the
-- cursor, the run that owns it, the items committed). Progress for the
-- dashboard stays in Redis, so its mirror columns go. Each item's commit
-- updates the row: a lower fill factor and no index on a column a commit
-- changes keep those updates HOT (no index writes).
ALTER TABLE {schema}.job_cursors
    DROP COLUMN started,
    DROP COLUMN times_interrupted,
    DROP COLUMN run_time_us,
    DROP COLUMN progress_done,
    DROP COLUMN progress_total,
    DROP COLUMN progress_unit,
    -- The job's kind, for operators.
    ADD COLUMN kind text NOT NULL DEFAULT '',
    -- Rows of completed and cancelled jobs are deleted by their last run.
    ADD CONSTRAINT job_cursors_status CHECK (status IN ('running', 'interrupted', 'failed'));

ALTER TABLE {schema}.job_cursors SET (fillfactor = 50);

