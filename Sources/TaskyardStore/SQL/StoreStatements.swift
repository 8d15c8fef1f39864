import Postgres

/// Every named statement of the store, for the test that prepares each one against the migrated schema.
public enum StoreStatements {
    public static let all: [PostgresStatement] =
        ClustersSQL.all + CredentialsSQL.all + NodesSQL.all + TasksSQL.all + TaskEventsSQL.all + SchedulesSQL.all + WebhooksSQL.all + StatsSQL.all + HistorySQL.all + SchemaMigrationsSQL.all + StatisticsSQL.all + [TaskSignals.notifyStatement, TaskStore.replayLagStatement]
}
