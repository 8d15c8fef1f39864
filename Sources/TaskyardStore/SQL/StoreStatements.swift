import Postgres

/// Every named statement of the store, for the test that prepares each one against the migrated schema.
public enum StoreStatements {
    /// The channel notified when a task reaches a terminal state; payload `<cluster_id> <task id>`.
    public static let taskFinishedChannel = TasksSQL.finishedChannel
    /// The channel notified when a node has new work: a task it can claim now (submitted, retried,
    /// requeued after a lost lease, moved to it, or next in its ordering key), or a cancel request for a
    /// task it holds; payload `<cluster_id> <node id>`. One channel with the node in the payload, because
    /// a channel per node would not fit PostgreSQL's 63-byte identifiers with 64-character ids.
    public static let nodeWorkChannel = TasksSQL.nodeWorkChannel

    public static let all: [PostgresStatement] =
        ClustersSQL.all + CredentialsSQL.all + NodesSQL.all + TasksSQL.all + TaskEventsSQL.all + SchemaMigrationsSQL.all + StatisticsSQL.all
}
