import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// What the maintenance leader does: expires leases, marks nodes offline and moves their tasks, prunes
/// and retires the history, refreshes statistics; and the schema's state.
public struct MaintenanceStore: Sendable, TaskStorePart {
    let context: StoreContext

    // MARK: - Maintenance

    /// Ends up to `limit` received tasks whose lease ran out: queued again while attempts remain, failed
    /// after the last, cancelled when a cancel was asked. Returns them as they are now.
    public func expireLeases(limit: Int = 500) async throws -> [TaskRecord] {
        let ended = try TaskRecord.all(try await pool.query(TasksSQL.expireLeases, [limit]))
        signal(ended)
        return ended
    }

    /// Marks offline the nodes not seen for `time`; returns them as (cluster, node).
    public func markOfflineNodes(notSeenFor time: Duration) async throws -> [(cluster: String, node: String)] {
        try await pool.query(NodesSQL.markOffline, [time.inSeconds]).map { row throws(PostgresError) in
            (try row.decode("cluster_id", as: String.self), try row.decode("id", as: String.self))
        }
    }

    /// Moves up to `limit` queued tasks off offline nodes (affinity any) to an online participant.
    public func reassignFromOfflineNodes(limit: Int = 500) async throws -> [(taskID: Int64, from: String, to: String)] {
        let rows = try await pool.query(TasksSQL.reassignFromOfflineNodes, [limit])
        signals.send(Set(try rows.map { row throws(PostgresError) in
            TaskSignal.work(cluster: try row.decode("cluster_id"), node: try row.decode("new_node"))
        }))
        return try rows.map { row throws(PostgresError) in
            (try row.decode("id", as: Int64.self), try row.decode("old_node", as: String.self),
             try row.decode("new_node", as: String.self))
        }
    }

    /// Fails up to `limit` queued tasks that said `"on_offline": "fail"` and would run on an offline node.
    public func failOfflineWaiters(limit: Int = 500) async throws -> [TaskRecord] {
        let failed = try TaskRecord.all(try await pool.query(TasksSQL.failOfflineWaiters, [limit]))
        signal(failed)
        return failed
    }

    /// Deletes up to `limit` finished root tasks older than `age` (optionally only of `states`, or of one
    /// cluster) with their descendants and history; returns how many roots went. Roots with ids below
    /// `sparing` wait `grace` more (retention drops their ranges whole).
    public func pruneFinished(olderThan age: Duration, states: [TaskState]? = nil, cluster: String? = nil,
                              limit: Int = 500, sparing: Int64? = nil, grace: Duration = .zero) async throws -> Int {
        try await pool.run(MaintenanceStatements.Prune(age: age, states: states, limit: limit, cluster: cluster,
                                                       sparing: sparing, grace: grace)).count
    }

    /// ANALYZEs `tasks` and `task_events` when they have grown past twice what the planner believes
    /// (or it never looked): a queue table grows from nothing in seconds, and until autovacuum's next
    /// round (a minute apart) every new plan — prepared statements, foreign-key checks — would treat it
    /// as tiny and scan it whole. Returns the tables analyzed.
    public func refreshStaleStatistics(minimumRows: Double = 1000) async throws -> [String] {
        try await pool.withConnection { connection in
            var analyzed: [String] = []
            for row in try connection.query(StatisticsSQL.tableSizes) {
                let name: String = try row.decode("name")
                let planned: Double = try row.decode("planned_rows")
                let live: Double = try row.decode("live_rows")
                guard live >= minimumRows, planned < 0 || live > 2 * max(planned, minimumRows / 2) else { continue }
                // The name comes from the statement's fixed list of this schema's tables, not from input.
                try connection.execute("ANALYZE " + (try connection.quoteIdentifier(name)))
                analyzed.append(name)
            }
            return analyzed
        }
    }

    // MARK: - Schema

    /// Reads a row of `tasks`: fails (after the lock timeout) while someone holds the table locked.
    public func probeTasks() async throws {
        _ = try await pool.query(TasksSQL.probe)
    }

    /// Names of the bundled migrations the database has not applied.
    public func pendingMigrations() async throws -> [String] {
        let applied = Set(try await pool.withConnection { connection in
            try connection.query(SchemaMigrationsSQL.applied)
                .map { row throws(PostgresError) in try row.decode("version", as: Int.self) }
        })
        return try Migration.bundled().filter { !applied.contains($0.version) }.map(\.name)
    }
}
