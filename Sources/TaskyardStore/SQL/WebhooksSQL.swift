import Postgres

/// Every statement on `webhooks` and `webhook_deliveries` (migration 0025).
enum WebhooksSQL {
    static let columns = "cluster_id, id, url, events, types, created_at"
    static let deliveryColumns = """
        cluster_id, id, webhook_id, event_xid::text AS event_xid, event_id, task_id, event, state, attempts,
        next_attempt_at, give_up_at, last_status, last_error, last_attempt_at, delivered_at, created_at
        """

    /// The id a new subscription will have: its secret is sealed bound to it before the row is written.
    static let nextID = PostgresStatement("webhooks.next_id", """
        SELECT nextval(pg_get_serial_sequence('webhooks', 'id')) AS id
        """)

    /// A new subscription; it delivers the transitions committed from now on.
    static let create = PostgresStatement("webhooks.create", """
        INSERT INTO webhooks (cluster_id, id, url, events, types, secret_sealed)
        VALUES ($1, $2, $3, $4::text[], $5::text[], $6)
        RETURNING \(columns)
        """)

    static let get = PostgresStatement("webhooks.get", """
        SELECT \(columns) FROM webhooks WHERE cluster_id = $1 AND id = $2
        """)

    static let list = PostgresStatement("webhooks.list", """
        SELECT \(columns) FROM webhooks WHERE cluster_id = $1 ORDER BY id LIMIT $2
        """)

    static let delete = PostgresStatement("webhooks.delete", """
        DELETE FROM webhooks WHERE cluster_id = $1 AND id = $2 RETURNING id
        """)

    /// Every subscription with its sealed secret and feed position: what the leader works through.
    static let subscriptions = PostgresStatement("webhooks.all", """
        SELECT \(columns), secret_sealed, cursor_xid::text AS cursor_xid, cursor_event FROM webhooks ORDER BY cluster_id, id
        """)

    /// Up to $6 of the changes a subscription delivers after its position ($2 transaction, $3 event) — to
    /// states $4, of types $5 (NULL: any) — of transactions older than every one still running, in feed
    /// order (`TaskEventsSQL.feed`'s rules). One row at least: `horizon` on each, a change per row.
    static let events = PostgresStatement("webhooks.events", TaskEventsSQL.changes(
        held: "false",
        filter: """
            AND e.to_state = ANY ($4::text[])
                          AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.cluster_id = e.cluster_id AND t.id = e.task_id
                                                                                    AND t.type = ANY ($5::text[])))
            """,
        limit: "$6"))

    /// Writes the deliveries of a page of a subscription's changes and moves its position to $5/$6 — only
    /// from the position it was read at ($3/$4): a second leader for a moment writes nothing twice. Per
    /// delivery: $7 event transactions, $8 event ids, $9 task ids, $10 event names, $11 bodies; $12 how long
    /// a delivery is tried. Returns whether the position moved.
    static let record = PostgresStatement("webhooks.record", """
        WITH moved AS (
            UPDATE webhooks SET cursor_xid = $5::text::xid8, cursor_event = $6
             WHERE cluster_id = $1 AND id = $2 AND cursor_xid = $3::text::xid8 AND cursor_event = $4
            RETURNING id
        ), written AS (
            INSERT INTO webhook_deliveries (cluster_id, webhook_id, event_xid, event_id, task_id, event, body,
                                            next_attempt_at, give_up_at)
            SELECT $1, $2, d.xid::xid8, d.event_id, d.task_id, d.event, d.body, now(), now() + make_interval(secs => $12)
              FROM unnest($7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[]) AS d (xid, event_id, task_id, event, body)
             WHERE EXISTS (SELECT 1 FROM moved)
            ON CONFLICT (webhook_id, event_id) DO NOTHING
            RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM moved) AS moved, (SELECT count(*) FROM written) AS written
        """)

    /// Takes up to $2 due deliveries of subscription $1, oldest due first, for an attempt each: counted,
    /// and due again $3 seconds later (an attempt whose outcome is never recorded, its leader gone, counts
    /// as failed then). With what sending needs: the body, and the subscription's URL and sealed secret.
    static let take = PostgresStatement("webhooks.take", """
        WITH chosen AS (
            SELECT id FROM webhook_deliveries
             WHERE webhook_id = $1 AND state = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id
             LIMIT $2
               FOR UPDATE SKIP LOCKED
        )
        UPDATE webhook_deliveries d
           SET attempts = d.attempts + 1, last_attempt_at = now(), next_attempt_at = now() + make_interval(secs => $3)
          FROM chosen c, webhooks w
         WHERE d.id = c.id AND w.cluster_id = d.cluster_id AND w.id = d.webhook_id
        RETURNING d.id, d.cluster_id, d.webhook_id, d.attempts, d.body, d.give_up_at, w.url, w.secret_sealed
        """)

    /// Records attempts' outcomes, each only on the attempt it was (a later attempt's record wins): per
    /// attempt $1 delivery, $2 attempt number, $3 delivered, or else tried again at $6 unless that is past
    /// the delivery's day (then failed); $4 status, $5 error.
    static let finishAttempts = PostgresStatement("webhooks.finish_attempts", """
        UPDATE webhook_deliveries d
           SET state = CASE WHEN o.delivered THEN 'delivered' WHEN o.retry_at > d.give_up_at THEN 'failed' ELSE 'pending' END,
               next_attempt_at = CASE WHEN o.delivered OR o.retry_at > d.give_up_at THEN NULL ELSE o.retry_at END,
               delivered_at = CASE WHEN o.delivered THEN now() END,
               last_status = o.status, last_error = o.error
          FROM unnest($1::bigint[], $2::integer[], $3::boolean[], $4::integer[], $5::text[], $6::timestamptz[])
               AS o (id, attempt, delivered, status, error, retry_at)
         WHERE d.id = o.id AND d.attempts = o.attempt AND d.state = 'pending'
        """)

    /// A page of a subscription's delivery log, newest first, before id $3, in state $4 (NULL: any).
    static let deliveries = PostgresStatement("webhooks.deliveries", """
        SELECT \(deliveryColumns) FROM webhook_deliveries
         WHERE cluster_id = $1 AND webhook_id = $2 AND id < $3 AND ($4::text IS NULL OR state = $4)
         ORDER BY id DESC
         LIMIT $5
        """)

    /// Sends a delivery again now, with a day of attempts from now.
    static let resend = PostgresStatement("webhooks.resend", """
        UPDATE webhook_deliveries
           SET state = 'pending', next_attempt_at = now(), give_up_at = now() + make_interval(secs => $4), delivered_at = NULL
         WHERE cluster_id = $1 AND webhook_id = $2 AND id = $3
        RETURNING \(deliveryColumns)
        """)

    /// Forgets finished deliveries made before $1 (at most $2 at a time).
    static let prune = PostgresStatement("webhooks.prune", """
        DELETE FROM webhook_deliveries WHERE id IN (
            SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1 LIMIT $2)
        """)

    static let all = [nextID, create, get, list, delete, subscriptions, events, record, take, finishAttempts, deliveries, resend, prune]
}
