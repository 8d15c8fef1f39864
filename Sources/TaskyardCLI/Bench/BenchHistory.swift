import Foundation
import Postgres
import TaskyardStore

/// Finished history for `taskyard bench --preload-history`, and the plans of the hot statements over it.
enum BenchHistory {
    /// COPYs `count` completed tasks into `cluster` (which must exist), finished over the last six days
    /// (inside the default 30-day retention, so that the server's cleaner leaves them), then ANALYZEs.
    static func preload(_ count: Int, cluster: String, node: String, pool: PostgresPool, progress: BenchProgress) async throws {
        let chunkRows = 20_000
        let now = Date()
        let span = 6 * 86_400.0
        try await pool.withConnection { connection in
            var written = 0
            try connection.copyIn("""
                COPY tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt, result,
                            created_at, received_at, finished_at, updated_at) FROM STDIN
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
                    chunk += "\(cluster)\tnoop\tcompleted\t\(node)\t{\(node)}\t1\t{}\t\(created)\t\(received)\t\(end)\t\(end)\n"
                }
                written += rows
                progress.update("preloading history: \(written)/\(count) finished tasks")
                return chunk
            }
            progress.update("preloading history: ANALYZE")
            try connection.execute("ANALYZE tasks")
        }
    }

    /// The scan nodes of the plans of the poll, report and list statements, as PostgreSQL would run them now.
    static func scans(cluster: String, node: String, pool: PostgresPool) async throws -> [String: [String]] {
        let none: String? = nil
        let noDate: Date? = nil
        let statements: [(String, [any PostgresEncodable])] = [
            ("tasks.poll", [cluster, node, 16, 30.0, [String](), [Double]()]),
            ("tasks.report", [cluster, node, [Int64(1)], [1], ["completed"], [none], [none], [none], [1.0], [Int64(1)],
                              [node], ["completed"], [none], [none], [noDate], [noDate]]),
            ("tasks.list", [cluster, [String]?.none, none, none, noDate, noDate, false, Int64?.none, none, false, Int64(0), 51]),
        ]
        return try await pool.withConnection { connection in
            var plans: [String: [String]] = [:]
            for (name, parameters) in statements {
                guard let statement = StoreStatements.all.first(where: { $0.name == name }) else { continue }
                let lines = try connection.query("EXPLAIN " + statement.sql, parameters)
                    .map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }
                plans[name] = lines.filter { $0.contains("Scan") && $0.contains(" on ") }.map { line in
                    line.replacingOccurrences(of: "->", with: "")
                        .components(separatedBy: "  (cost").first!.trimmingCharacters(in: .whitespaces)
                }
            }
            return plans
        }
    }
}
