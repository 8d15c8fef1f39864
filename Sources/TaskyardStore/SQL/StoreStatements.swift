import Postgres

/// Every named statement of the store, for the test that prepares each one against the migrated schema.
public enum StoreStatements {
    /// The channel notified when a task reaches a terminal state; payload `<cluster_id> <task id>`.
    public static let taskFinishedChannel = TasksSQL.finishedChannel

    public static let all: [PostgresStatement] =
        ClustersSQL.all + NodesSQL.all + TasksSQL.all + TaskEventsSQL.all + SchemaMigrationsSQL.all
}
