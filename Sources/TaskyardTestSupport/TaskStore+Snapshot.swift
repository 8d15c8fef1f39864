import Postgres
import TaskyardStore

extension TaskStore {
    /// Every row of `tasks` and `task_events`, as text: compared before and after a refused request.
    public func snapshot() async throws -> [String] {
        try await pool.withConnection { connection in
            let tasks = try connection.query("SELECT t::text AS row FROM tasks t ORDER BY id")
            let events = try connection.query("SELECT e::text AS row FROM task_events e ORDER BY id")
            return try (Array(tasks) + Array(events)).map { row throws(PostgresError) in try row.decode("row", as: String.self) }
        }
    }
}
