-- Transactionally staged jobs. EnqueueTx inserts a row inside the caller's
-- transaction; the drainer pushes committed rows to Redis and deletes them.
CREATE TABLE {schema}.outbox (
    -- Drain order: rows are pushed in id order, a batch at a time.
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The job's id in the queue, generated when the job is staged.
    job_id       text        NOT NULL,
    kind         text        NOT NULL,
    queue        text        NOT NULL,
    -- The job's arguments, as given (json keeps the text as is).
    args         json        NOT NULL,
    -- 0 means the runner's default for the kind.
    max_attempts integer     NOT NULL DEFAULT 0,
    -- When the job is due; NULL means at once.
    run_at       timestamptz,
    meta         jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One notification per inserting statement, delivered at commit (and not at
-- all on rollback); identical notifications of one transaction fold into one.
CREATE FUNCTION {schema}.outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iterjob_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.outbox_notify();
