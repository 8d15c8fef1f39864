import Foundation
import Postgres
import TaskyardStore

/// CPU time (user + system) of processes, from /proc (Linux): what each process spends per task.
enum ProcessCPU {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func seconds(of pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)": state, ppid, …; utime and stime are fields 14 and 15 of the line, and cutime and
        // cstime (16, 17) those of its children that ended: PostgreSQL's backends that exit during a run
        // are counted in their postmaster's, and would otherwise take their CPU with them.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 14 else { return nil }
        let ticks = fields[11...14].compactMap { Double($0) }
        return ticks.count == 4 ? ticks.reduce(0, +) / ticksPerSecond : nil
    }

    /// Every PostgreSQL process of this machine (its backends and background processes): the bench's
    /// database is assumed to be the one PostgreSQL at work while it measures.
    static func postgresSeconds() -> Double {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        return pids.reduce(0) { total, pid in
            guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), comm.hasPrefix("postgres")
            else { return total }
            return total + (seconds(of: pid) ?? 0)
        }
    }
}

/// CPU seconds of the bench's processes at one moment; two of them give the CPU per task between.
struct CPUSnapshot: Sendable {
    var servers: Double
    var agents: Double
    var postgres: Double
    var bench: Double

    init(_ processes: BenchProcesses) {
        servers = processes.servers.compactMap { ProcessCPU.seconds(of: $0.pid) }.reduce(0, +)
        agents = processes.agents.compactMap { ProcessCPU.seconds(of: $0.pid) }.reduce(0, +)
        postgres = ProcessCPU.postgresSeconds()
        bench = ProcessCPU.seconds(of: getpid()) ?? 0
    }

    /// Milliseconds of CPU per task since `before`.
    func perTask(since before: CPUSnapshot, tasks: Int) -> BenchReport.CPUPerTask {
        let scale = 1000 / Double(max(tasks, 1))
        return .init(server: (servers - before.servers) * scale, agents: (agents - before.agents) * scale,
                     postgres: (postgres - before.postgres) * scale, bench: (bench - before.bench) * scale)
    }
}

/// What the database did for a run: each statement's time (pg_stat_statements, when loaded) and each
/// table's row writes, HOT or not, with the index entries they imply.
struct DatabaseCounters: Sendable {
    var statements: [String: (calls: Double, milliseconds: Double)]
    var tables: [String: (inserts: Double, updates: Double, hotUpdates: Double, deletes: Double, indexes: Int)]

    /// The tables a task's life writes.
    static let tables = ["tasks_live", "tasks_finished", "task_events", "task_participants", "task_idempotency_keys", "nodes"]

    static func read(_ pool: PostgresPool, withStatements: Bool) async throws -> DatabaseCounters {
        try await pool.withConnection { connection in
            var statements: [String: (calls: Double, milliseconds: Double)] = [:]
            if withStatements {
                for row in try connection.query(BenchSQL.statementTimes) {
                    let name = PostgresStatement.name(inText: try row.decode("query")) ?? "other"
                    let calls: Double = try row.decode("calls")
                    let milliseconds: Double = try row.decode("milliseconds")
                    statements[name, default: (0, 0)].calls += calls
                    statements[name, default: (0, 0)].milliseconds += milliseconds
                }
            }
            var tables: [String: (inserts: Double, updates: Double, hotUpdates: Double, deletes: Double, indexes: Int)] = [:]
            for row in try connection.query(BenchSQL.tableWrites, [Self.tables]) {
                tables[try row.decode("name")] = (try row.decode("inserts"), try row.decode("updates"), try row.decode("hot_updates"),
                                                  try row.decode("deletes"), try row.decode("indexes"))
            }
            return DatabaseCounters(statements: statements, tables: tables)
        }
    }

    /// Per task since `before`: each statement's calls and milliseconds, busiest first, and each table's writes.
    func perTask(since before: DatabaseCounters, tasks: Int) -> BenchReport.DatabaseCosts {
        let n = Double(max(tasks, 1))
        let statementRows = statements.compactMap { name, now -> BenchReport.StatementCost? in
            let earlier = before.statements[name] ?? (0, 0)
            let calls = now.calls - earlier.calls
            guard calls > 0, !name.hasPrefix("bench.") else { return nil }
            return .init(statement: name, callsPerTask: calls / n, millisecondsPerTask: (now.milliseconds - earlier.milliseconds) / n,
                         meanMilliseconds: (now.milliseconds - earlier.milliseconds) / calls)
        }.sorted { $0.millisecondsPerTask > $1.millisecondsPerTask }
        let tableRows = Self.tables.compactMap { name -> BenchReport.TableWrites? in
            guard let now = tables[name] else { return nil }
            let earlier = before.tables[name] ?? (0, 0, 0, 0, now.indexes)
            let inserts = (now.inserts - earlier.inserts) / n, updates = (now.updates - earlier.updates) / n
            let hot = (now.hotUpdates - earlier.hotUpdates) / n, deletes = (now.deletes - earlier.deletes) / n
            // Every inserted row and every update that is not HOT writes an entry into each index (a partial
            // index only when the row matches it: an upper bound).
            return .init(table: name, insertsPerTask: inserts, updatesPerTask: updates, hotUpdatesPerTask: hot,
                         deletesPerTask: deletes, indexes: now.indexes, indexEntriesPerTask: (inserts + updates - hot) * Double(now.indexes))
        }
        return .init(statements: statementRows, tables: tableRows)
    }
}
