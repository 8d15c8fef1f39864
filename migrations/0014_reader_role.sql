-- A role for reading the task history in SQL, and nothing else: analysts and BI tools log in as users that
-- are members of `taskyard_reader`. It reads tasks (but not their lease or idempotency digests), the
-- participants' outcomes, the events, nodes and clusters; it cannot read tokens, signing keys or idempotency
-- keys, and cannot write anything.

-- The grants, in one place: a deployment whose migrating user may not create roles creates the role
-- itself and then runs `SELECT taskyard_grant_reader();` as that user.
CREATE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants TO taskyard_reader;
    GRANT SELECT (id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
                  max_attempts, budget_start, priority, run_after, timeout_seconds, lease_expires_at, ordering_key,
                  idempotency_key, opaque_id, affinity, abortable, internal, result, error, progress,
                  cancel_requested_at, cancel_reason, created_at, received_at, finished_at, updated_at, traceparent)
        ON tasks TO taskyard_reader;
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        BEGIN
            CREATE ROLE taskyard_reader NOLOGIN;
        EXCEPTION
            -- Roles belong to the whole server: another database's migration made it at this moment.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'the role taskyard_reader was not created: % may not create roles. Create it '
                              '(CREATE ROLE taskyard_reader NOLOGIN) and run SELECT taskyard_grant_reader(); as %.',
                              current_user, current_user;
                RETURN;
        END;
    END IF;
    PERFORM taskyard_grant_reader();
END $$;

-- Functions are executable by everyone unless said otherwise; these change the schema and are the
-- maintenance leader's.
REVOKE EXECUTE ON FUNCTION taskyard_grant_reader(), taskyard_add_history_partition(bigint, bigint),
    taskyard_history_range_must_stay(bigint, bigint, timestamptz),
    taskyard_extend_history(interval, bigint, integer, bigint), taskyard_retire_history_partition(timestamptz),
    taskyard_drop_history_partition(bigint) FROM PUBLIC;
