import Foundation
import Postgres
import TaskyardAPI
import TaskyardDomain
import TaskyardStore

/// Finished history for `taskyard-bench --preload-history`, and the plans of the hot statements over it.
enum BenchHistory {
    /// COPYs `count` finished tasks into `cluster` (which must exist), finished over the last six days
    /// (inside the default 30-day retention, so that the server's cleaner leaves them), then ANALYZEs.
    /// Like a real history it is mostly alike: 2% failed, 1% cancelled, 0.5% of a rare type, 20 nodes
    /// (`<node>-1` … `<node>-20`), every 500th with an X-Opaque-Id; the list filters are timed on it.
    static func preload(_ count: Int, cluster: String, node: String, pool: PostgresPool, progress: BenchProgress) async throws {
        let chunkRows = 20_000
        let now = Date()
        let span = 6 * 86_400.0
        try await pool.withConnection { connection in
            var written = 0
            try connection.copyIn("""
                COPY tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt, result,
                            opaque_id, created_at, received_at, finished_at, updated_at) FROM STDIN
                """) {
                guard written < count else { return nil }
                let rows = min(chunkRows, count - written)
                var chunk = ""
                chunk.reserveCapacity(rows * 160)
                for index in written..<written + rows {
                    let finished = now.addingTimeInterval(-span + span * Double(index) / Double(count))
                    let created = finished.addingTimeInterval(-0.004).postgresText ?? ""
                    let received = finished.addingTimeInterval(-0.002).postgresText ?? ""
                    let end = finished.postgresText ?? ""
                    let type = index % 200 == 53 ? "rare" : "noop"
                    let state = index % 50 == 3 ? "failed" : index % 100 == 5 ? "cancelled" : "completed"
                    let host = "\(node)-\(1 + index % 20)"
                    let opaque = index % 500 == 11 ? "op-\(index % 5000 / 500)" : "\\N"
                    chunk += "\(cluster)\t\(type)\t\(state)\t\(host)\t{\(host)}\t1\t{}\t\(opaque)\t\(created)\t\(received)\t\(end)\t\(end)\n"
                }
                written += rows
                progress.update("preloading history: \(written)/\(count) finished tasks")
                return chunk
            }
            progress.update("preloading history: ANALYZE")
            try connection.execute("ANALYZE tasks")
        }
    }

    /// The charts' buckets of the preloaded history, as the maintenance leader's rollup would have written
    /// them from its events (the preload writes tasks alone): per minute and per hour, for the cluster, each
    /// type and each node, what finished by state, and the histograms of its pick-up and run times (2 ms
    /// each, as `preload` makes them).
    static func preloadStats(cluster: String, pool: PostgresPool) async throws {
        let twoMilliseconds = [Int](repeating: 0, count: StatsHistogram.bucket(ofMilliseconds: 2))
        try await pool.withConnection { connection in
            _ = try connection.query("""
            INSERT INTO task_stats (cluster_id, scope, name, grain, start, completed, failed, cancelled, pickup, run)
            SELECT cluster_id,
                   CASE WHEN grouping(type) = 0 THEN 'type' WHEN grouping(assigned_node) = 0 THEN 'node' ELSE '' END,
                   CASE WHEN grouping(type) = 0 THEN type WHEN grouping(assigned_node) = 0 THEN assigned_node ELSE '' END,
                   g.grain, date_bin(make_interval(secs => g.grain), finished_at, 'epoch'),
                   count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'failed'),
                   count(*) FILTER (WHERE state = 'cancelled'),
                   $2::integer[] || count(*)::integer, $2::integer[] || count(*)::integer
              FROM tasks, (VALUES (60), (3600)) AS g (grain) WHERE cluster_id = $1 AND finished_at IS NOT NULL
             GROUP BY GROUPING SETS ((cluster_id, g.grain, date_bin(make_interval(secs => g.grain), finished_at, 'epoch')),
                                     (cluster_id, type, g.grain, date_bin(make_interval(secs => g.grain), finished_at, 'epoch')),
                                     (cluster_id, assigned_node, g.grain, date_bin(make_interval(secs => g.grain), finished_at, 'epoch')))
            """, [cluster, twoMilliseconds])
            try connection.execute("ANALYZE task_stats")
        }
    }

    /// `GET …/stats` over the history cluster for each window and scope, as the route reads and adds them up
    /// (without HTTP): the median time of 5, the minutes read, and the scans of the read's plan.
    static func statsTimings(cluster: String, node: String, store: TaskStore) async throws -> [BenchReport.ListTiming] {
        let cases: [(String, StatsScope)] = [("", .cluster), ("&type=rare", .type("rare")), ("&node=\(node)-7", .node("\(node)-7"))]
        var timings: [BenchReport.ListTiming] = []
        for window in ["1h", "24h", "7d"] {
            for (query, scope) in cases {
                let span = try StatsWindow(window: window, step: nil)
                var times: [Double] = []
                var read = 0
                for _ in 0..<5 {
                    let started = ContinuousClock.now
                    let points = try await store.stats.series(cluster: cluster, scope: scope, window: span)
                    _ = points.map(StatsPointObject.init)
                    times.append((ContinuousClock.now - started).inSeconds * 1000)
                    read = points.count
                }
                guard let statement = StoreStatements.all.first(where: { $0.name == "stats.buckets" }) else { continue }
                let key = scope.key
                let grain = StatsBucket.Grain.reading(step: span.step).rawValue
                let plan = try await store.pool.withConnection { connection in
                    try connection.query("EXPLAIN " + statement.sql, [cluster, key.scope, key.name, grain, Date() - span.window.inSeconds, Date()])
                        .map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }
                }
                timings.append(.init(filter: "window=\(window)\(query)", milliseconds: BenchReport.median(times), rows: read, scans: scanLines(plan)))
            }
        }
        return timings
    }

    /// The scan nodes of the plans of the poll and report statements, as PostgreSQL would run them now.
    static func scans(cluster: String, node: String, pool: PostgresPool) async throws -> [String: [String]] {
        // Bound as the store binds them (its typed statements), so that a parameter added there is bound here.
        let report = QueueStatements.ReportItem(taskID: 1, attempt: 1, state: .completed, result: nil, error: nil, eventDetail: nil,
                                                retryDelay: .seconds(1), lease: "lease",
                                                participants: [ParticipantOutcome(node: node, state: .completed)])
        let statements = [
            QueueStatements.Poll(cluster: cluster, node: node, limit: 16, lease: .seconds(30), orderingHold: .seconds(300)).namedBindings,
            QueueStatements.Report(cluster: cluster, node: node, items: [report], withEarlierOutcomes: false).namedBindings,
        ]
        return try await pool.withConnection { connection in
            var plans: [String: [String]] = [:]
            for (name, parameters) in statements {
                guard let statement = StoreStatements.all.first(where: { $0.name == name }) else { continue }
                plans[name] = scanLines(try connection.query("EXPLAIN " + statement.sql, parameters)
                    .map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) })
            }
            return plans
        }
    }

    /// A 100-row page of each list filter over the history cluster: the median time of 5 executions (as the
    /// API runs it: planned with its values) and the scans of its plan.
    static func listTimings(cluster: String, node: String, pool: PostgresPool) async throws -> [BenchReport.ListTiming] {
        let now = Date()
        let cases: [(String, TaskFilter)] = [
            ("no filter", TaskFilter()),
            ("since=10 minutes ago", TaskFilter(since: now.addingTimeInterval(-600))),
            ("since=3 days ago&until=+1 hour", TaskFilter(since: now.addingTimeInterval(-3 * 86_400), until: now.addingTimeInterval(-3 * 86_400 + 3600))),
            ("until=5 days ago", TaskFilter(until: now.addingTimeInterval(-5 * 86_400))),
            ("state=failed", TaskFilter(states: [.failed])),
            ("state=failed,cancelled", TaskFilter(states: [.failed, .cancelled])),
            ("state=completed", TaskFilter(states: [.completed])),
            ("type=rare", TaskFilter(type: "rare")),
            ("node=\(node)-7", TaskFilter(node: "\(node)-7")),
            ("parent_id=none", TaskFilter(parent: .roots)),
            ("opaque_id=op-3", TaskFilter(opaqueID: "op-3")),
            ("state=failed&type=rare", TaskFilter(states: [.failed], type: "rare")),
            ("type=rare&node=\(node)-14", TaskFilter(type: "rare", node: "\(node)-14")),
        ]
        return try await pool.withConnection { connection in
            var timings: [BenchReport.ListTiming] = []
            for (name, filter) in cases {
                let query = TaskReads.listQuery(cluster: cluster, filter: filter, after: nil)
                var times: [Double] = []
                var rows = 0
                for _ in 0..<5 {
                    let started = ContinuousClock.now
                    rows = try connection.query(query.statement.sql, query.parameters).count
                    times.append((ContinuousClock.now - started).inSeconds * 1000)
                }
                let plan = try connection.query("EXPLAIN " + query.statement.sql, query.parameters)
                    .map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }
                timings.append(.init(filter: name, milliseconds: BenchReport.median(times), rows: min(rows, filter.limit),
                                     scans: scanLines(plan)))
            }
            return timings
        }
    }

    private static func scanLines(_ plan: [String]) -> [String] {
        plan.filter { $0.contains("Scan") && $0.contains(" on ") }.map { line in
            line.replacingOccurrences(of: "->", with: "").components(separatedBy: "  (cost").first!.trimmingCharacters(in: .whitespaces)
        }
    }
}
