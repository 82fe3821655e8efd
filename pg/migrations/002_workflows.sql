-- Idempotent step workflows: one row per workflow, holding its recovery
-- point (the first unfinished step) and its persisted attributes.
CREATE TABLE {schema}.workflows (
    id              text        PRIMARY KEY,
    -- The workflow's name, which is also the job kind that runs it.
    name            text        NOT NULL,
    idempotency_key text        NOT NULL,
    args            jsonb       NOT NULL,
    -- Recovery point: the name of the first step not yet committed; NULL
    -- once every step has.
    step            text,
    -- Persisted attributes, saved with each step.
    attrs           jsonb       NOT NULL DEFAULT 'null',
    status          text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'awaiting', 'succeeded', 'failed', 'cancelled')),
    -- While status is 'awaiting': the step whose staged jobs are awaited.
    await_step      text,
    -- The last error: of the step that failed, or why the workflow failed.
    error           text,
    -- Queue and attempt cap of the jobs that run the workflow.
    queue           text        NOT NULL,
    max_attempts    integer     NOT NULL,
    -- The job that runs (or last ran) the workflow.
    job_id          text,
    -- The run working on the workflow: its job id and run number, and when
    -- the claim lapses if that run vanishes.
    locked_by       text,
    locked_run      bigint,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (name, idempotency_key)
);

CREATE INDEX workflows_status ON {schema}.workflows (status, updated_at)
    WHERE status IN ('running', 'awaiting');

-- Jobs a step staged and awaits, with each one's outcome.
CREATE TABLE {schema}.workflow_jobs (
    job_id      text        PRIMARY KEY,
    workflow_id text        NOT NULL REFERENCES {schema}.workflows (id) ON DELETE CASCADE,
    -- The step that staged the job: the group it belongs to.
    step        text        NOT NULL,
    kind        text        NOT NULL,
    state       text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'succeeded', 'failed')),
    error       text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);

CREATE INDEX workflow_jobs_group ON {schema}.workflow_jobs (workflow_id, step);
