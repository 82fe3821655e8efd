-- Transactional checkpoints (not used yet): the state of an iterable job
-- whose items commit with their cursor. A run writes only while run is its
-- own run number, checked in the same transaction, so a stale run's commit
-- fails.
CREATE TABLE {schema}.job_cursors (
    job_id             text        PRIMARY KEY,
    -- Run number (lease) of the run that owns the state.
    run                bigint      NOT NULL,
    -- The position after the last item committed; NULL before the first.
    cursor             jsonb,
    status             text        NOT NULL DEFAULT 'running',
    started            boolean     NOT NULL DEFAULT false,
    executions         integer     NOT NULL DEFAULT 0,
    times_interrupted  integer     NOT NULL DEFAULT 0,
    items_processed    bigint      NOT NULL DEFAULT 0,
    run_time_us        bigint      NOT NULL DEFAULT 0,
    progress_done      bigint      NOT NULL DEFAULT 0,
    progress_total     bigint      NOT NULL DEFAULT -1,
    progress_unit      text,
    first_started_at   timestamptz,
    last_checkpoint_at timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
