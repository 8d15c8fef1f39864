import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Hot-path cost must not grow with finished history: the claim, report, heartbeat and list statements
/// read `tasks` through indexes, never the whole table, in the custom plans PostgreSQL makes for the
/// first executions of a prepared statement and in the generic plan it switches to after five (where a
/// `LIMIT $n` is unknown and joins are costed for a tenth of the table).
@Suite("Query plans")
struct QueryPlanTests {
    /// A small table is where a planner likes a sequential scan best (and, under a queue's churn, where
    /// its statistics lag the most); a long history is where one would hurt.
    @Test("the hot statements read tasks through indexes, custom and generic plans, with and without history",
          arguments: [0, 50_000])
    func hotStatementsUseIndexes(history: Int) async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            try await store.pool.withConnection { connection in
                // Finished history and a queue, written straight in SQL for speed.
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt,
                                       finished_at)
                    SELECT $1, 'noop', 'completed', 'n' || (1 + g % 3), ARRAY['n' || (1 + g % 3)], 1, now()
                      FROM generate_series(1, $2) AS g
                    """, [TaskStore.cluster, history])
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, assigned_node, participating_nodes)
                    SELECT $1, 'noop', 'n1', ARRAY['n1'] FROM generate_series(1, 2000)
                    """, [TaskStore.cluster])
            }
            let held = try await store.queue.claim(cluster: TaskStore.cluster, node: "n1", limit: 300, lease: .seconds(30))
            #expect(held.count == 300)
            try await store.pool.withConnection { connection in try connection.execute("ANALYZE tasks") }
            let claims = held.prefix(200)
            let reports = claims.map { claim in
                QueueStatements.ReportItem(taskID: claim.id, attempt: 1, state: .completed, result: nil, error: nil,
                                           eventDetail: nil, retryDelay: .seconds(1), lease: claim.lease,
                                           participants: [ParticipantOutcome(node: "n1", state: .completed)])
            }
            var statements: [(name: String, bindings: [any PostgresEncodable])] = [
                QueueStatements.Poll(cluster: TaskStore.cluster, node: "n1", limit: 256, lease: .seconds(30),
                                     orderingHold: .seconds(300)).namedBindings,
                QueueStatements.Report(cluster: TaskStore.cluster, node: "n1", items: reports, withEarlierOutcomes: false).namedBindings,
                QueueStatements.RenewLeases(cluster: TaskStore.cluster, node: "n1", lease: .seconds(30),
                                            tasks: claims.map { HeldTask(id: $0.id, attempt: 1, lease: $0.lease) }).namedBindings,
                ("tasks.expire_leases", [500]),
            ]
            // The metrics' scrape: live tasks only (with no history, reading all of a small table is fine).
            if history > 0 { statements.append(("tasks.live_counts", [])) }
            for (name, parameters) in statements {
                let plans = try await store.pool.withConnection { connection in
                    try connection.transaction { connection in
                        [try connection.explain(name, parameters, generic: false),
                         try connection.explain(name, parameters, generic: true)]
                    }
                }
                // Never the history; the live side is the queue, which the planner may read whole when small.
                for plan in plans {
                    #expect(!plan.contains("Seq Scan on tasks_finished") && !plan.contains("Seq Scan on tasks "), "\(name): \(plan)")
                    #expect(!plan.contains("tasks_finished"), "\(name) reads the history: \(plan)")
                }
                if name == "tasks.poll" {
                    #expect(plans.allSatisfy { $0.contains("tasks_claim_idx") && $0.contains("Tid Scan on tasks") }, "\(plans)")
                }
            }
            let claimed = try await store.queue.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, lease: .seconds(30))
            #expect(claimed.count == 16)
        }
    }
}

extension QueryPlanTests {
    /// Every filter of the list API, alone, combined and with a cursor, over a history 60 times a page:
    /// each page must be read from an index that starts where its answer is, so the rows the plan reads
    /// stay near the page size. The list before this held no such promise: `since` walked the primary
    /// key from the cluster's first task, `state=failed` and `type` scanned the table.
    @Test("every list filter reads about a page of rows, not the history")
    func listFiltersReadAPage() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let cluster = TaskStore.cluster
            let root = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"]), cluster: cluster).task
            try await store.pool.withConnection { connection in
                // 30,000 finished tasks over six days: 2% failed, 1% cancelled, 0.5% of a rare type, 20 nodes,
                // every 500th with an opaque id, 150 children of `root`; then 200 live ones now.
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt, opaque_id,
                                       parent_id, created_at, finished_at)
                    SELECT $1, CASE WHEN g % 200 = 53 THEN 'rare' ELSE 'noop' END,
                           CASE WHEN g % 50 = 3 THEN 'failed' WHEN g % 100 = 5 THEN 'cancelled' ELSE 'completed' END,
                           'n' || (1 + g % 20), ARRAY['n' || (1 + g % 20)], 1,
                           CASE WHEN g % 500 = 11 THEN 'op-' || (g % 5000 / 500) END,
                           CASE WHEN g % 200 = 13 THEN $2::bigint END,
                           now() - interval '6 days' + g * interval '17 seconds', now() - interval '6 days' + g * interval '17 seconds'
                      FROM generate_series(1, 30000) AS g
                    """, [cluster, root.id])
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, assigned_node, participating_nodes)
                    SELECT $1, 'noop', 'n1', ARRAY['n1'] FROM generate_series(1, 200)
                    """, [cluster])
                try connection.execute("ANALYZE tasks")
            }
            let now = Date()
            let cases: [(String, TaskFilter)] = [
                ("no filter", TaskFilter()),
                ("since 10 minutes ago", TaskFilter(since: now.addingTimeInterval(-600))),
                ("until 5 days ago", TaskFilter(until: now.addingTimeInterval(-5 * 86_400))),
                ("an hour three days ago", TaskFilter(since: now.addingTimeInterval(-3 * 86_400), until: now.addingTimeInterval(-3 * 86_400 + 3600))),
                ("state failed", TaskFilter(states: [.failed])),
                ("states failed and cancelled", TaskFilter(states: [.failed, .cancelled])),
                ("state queued", TaskFilter(states: [.queued])),
                ("state completed", TaskFilter(states: [.completed])),
                ("type rare", TaskFilter(type: "rare")),
                ("node n7", TaskFilter(node: "n7")),
                ("children of a task", TaskFilter(parent: .task(root.id))),
                ("roots only", TaskFilter(parent: .roots)),
                ("opaque id", TaskFilter(opaqueID: "op-3")),
                ("state failed and type rare", TaskFilter(states: [.failed], type: "rare")),
                ("type rare on node n14", TaskFilter(type: "rare", node: "n14")),
                ("state failed since 3 days ago", TaskFilter(states: [.failed], since: now.addingTimeInterval(-3 * 86_400))),
                ("node n2 until 1 day ago", TaskFilter(node: "n2", until: now.addingTimeInterval(-86_400))),
            ]
            for (name, filter) in cases {
                // The second page too: it starts at the first page's cursor.
                let first = try await store.reads.tasks(cluster: cluster, filter: filter)
                var starts: [(micros: Int64, id: Int64)?] = [nil]
                if let next = first.next { starts.append((next.createdMicros!, next.lastID)) }
                for start in starts {
                    let query = TaskReads.listQuery(cluster: cluster, filter: filter, after: start)
                    // Lists run unprepared: each is planned with its values.
                    let plan = try await store.pool.withConnection { connection in
                        try connection.explain(query.statement, query.parameters, generic: false, analyze: true)
                    }
                    #expect(Self.seqScansOfRows(plan, on: "tasks_finished").isEmpty, "\(name): \(plan)")
                    let read = Self.rowsRead(plan)
                    #expect(read <= 1_000, "\(name)\(start == nil ? "" : ", page 2"): read \(read) rows\n\(plan)")
                }
                // Oldest first, every row matching.
                let created = first.tasks.map { [$0.createdAt.timeIntervalSince1970, Double($0.id)] }
                #expect(created == created.sorted { $0.lexicographicallyPrecedes($1) }, "\(name): out of order")
                #expect(!first.tasks.isEmpty, "\(name): the case should match something")
            }
        }
    }

    /// Rows the plan's scans of `tasks` returned plus those their filters dropped.
    /// The sequential scans of `table`'s partitions that met a row (an empty range's scan costs nothing,
    /// and is what the planner picks for it).
    static func seqScansOfRows(_ plan: String, on table: String) -> [String] {
        let lines = plan.split(separator: "\n").map(String.init)
        return lines.indices.filter { index in
            guard lines[index].contains("Seq Scan on \(table)") else { return false }
            let removed = index + 1 < lines.count && lines[index + 1].contains("Rows Removed by Filter")
            return !lines[index].contains("(actual rows=0 ") || removed
        }.map { lines[$0] }
    }

    static func rowsRead(_ plan: String) -> Int {
        var total = 0
        for line in plan.split(separator: "\n") {
            if line.contains(" on tasks"), let actual = line.range(of: "(actual ") {
                let text = line[actual.upperBound...]
                func number(after key: String) -> Int {
                    guard let range = text.range(of: key) else { return 0 }
                    return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
                }
                total += number(after: "rows=") * max(1, number(after: "loops="))
            } else if let range = line.range(of: "Rows Removed by Filter: ") ?? line.range(of: "Rows Removed by Index Recheck: ") {
                total += Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
            }
        }
        return total
    }
}

extension PostgresConnection {
    /// The plan of one of the store's statements with these parameters, as text: the custom plan, or the
    /// generic one a prepared statement gets after five executions.
    func explain(_ statement: String, _ parameters: [any PostgresEncodable], generic: Bool) throws -> String {
        try explain(StoreStatements.all.first { $0.name == statement }!, parameters, generic: generic, analyze: false)
    }

    /// `explain`, of a statement; with `analyze`, run, with the rows each step read.
    func explain(_ statement: PostgresStatement, _ parameters: [any PostgresEncodable], generic: Bool, analyze: Bool) throws -> String {
        let sql = statement.sql
        let explain = analyze ? "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) " : "EXPLAIN "
        let lines: PostgresRows
        if generic {
            let name = "explained_" + statement.name.replacingOccurrences(of: ".", with: "_")
            try execute("SET LOCAL plan_cache_mode = force_generic_plan")
            try execute("PREPARE \(name) AS " + sql)
            defer { try? execute("DEALLOCATE \(name)") }
            // EXPLAIN EXECUTE takes no bind parameters: the test's own constants are written as literals.
            let literals = parameters.map { parameter in
                parameter.postgresText.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL"
            }
            lines = try query(explain + "EXECUTE \(name)" + (literals.isEmpty ? "" : "(\(literals.joined(separator: ", ")))"))
        } else {
            lines = try query(explain + sql, parameters)
        }
        return try lines.map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }.joined(separator: "\n")
    }
}
