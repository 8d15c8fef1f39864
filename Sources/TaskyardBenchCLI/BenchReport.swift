import Foundation

/// What `taskyard-bench` found: every run, and the medians the table shows.
struct BenchReport: Codable, Sendable {
    struct Machine: Codable, Sendable {
        var cores: Int
        var memoryGiB: Double
        var postgres: String
        var synchronousCommit: String
        var fsync: String
    }

    struct Run: Codable, Sendable {
        /// End to end: first submit to last finish.
        var tasksPerSecond: Double
        var failed: Int
        var raw: BenchWorkload.RawCeiling
        /// Batched SQL on bare tables: what PostgreSQL itself does with the same work.
        var physical: Double
        var steady: BenchWorkload.Steady?
        var idlePickUp: BenchWorkload.Percentiles
        var idleCompletion: BenchWorkload.Percentiles
        var loadedCompletion: BenchWorkload.Percentiles
        /// Nil when the bench used a server it did not start.
        var serverPeakBytes: Int?
        var agentIdleBytes: Int
        var agentPeakBytes: Int
        /// CPU of each process per task, over the throughput run.
        var cpu: CPUPerTask?
        /// The most connections the servers held to PostgreSQL at once during the throughput run.
        var databaseConnections: Int?
    }

    /// Milliseconds of CPU per task: the servers together, the agents together, every PostgreSQL process,
    /// and the bench's own client (which submits and polls for the finish).
    struct CPUPerTask: Codable, Sendable {
        var server: Double
        var agents: Double
        var postgres: Double
        var bench: Double
    }

    /// What the database did per task in the last throughput run.
    struct DatabaseCosts: Codable, Sendable {
        var statements: [StatementCost]
        var tables: [TableWrites]
    }

    struct StatementCost: Codable, Sendable {
        var statement: String
        var callsPerTask: Double
        var millisecondsPerTask: Double
        var meanMilliseconds: Double
    }

    struct TableWrites: Codable, Sendable {
        var table: String
        var insertsPerTask: Double
        var updatesPerTask: Double
        var hotUpdatesPerTask: Double
        var deletesPerTask: Double
        var indexes: Int
        /// Index entries written per task: each insert and non-HOT update writes into each index (at most).
        var indexEntriesPerTask: Double
    }

    struct History: Codable, Sendable {
        var finishedRows: Int
        var claimAndCompleteEmpty: Double
        var claimAndCompleteWithHistory: Double
        /// The scan nodes of each hot statement's plan.
        var plans: [String: [String]]
        /// A page of each list filter over the history.
        var lists: [ListTiming] = []
        /// The charts' series over the history, by window and scope (`filter` is the query).
        var stats: [ListTiming] = []
    }

    /// `GET /metrics` of the server under the bench's last run, and what a scrape costs after it.
    struct MetricsScrape: Codable, Sendable {
        /// Metric families in the scrape taken during the last run.
        var families: Int
        /// A scrape that reads the database (the live-task counts, not cached), median of 5.
        var databaseReadMilliseconds: Double
        /// A scrape within the 2 s the database read is kept, median of 5.
        var cachedMilliseconds: Double
    }

    struct ListTiming: Codable, Sendable {
        var filter: String
        var milliseconds: Double
        var rows: Int
        var scans: [String]
    }

    var metrics: MetricsScrape?
    /// Nil when the last run could not read the counters.
    var database: DatabaseCosts?
    var command: String
    var machine: Machine
    var servers: Int
    var agents: Int
    var tasks: Int
    var participants: Int
    var submit: String
    var runs: [Run]
    /// An agent just started, before any work.
    var agentFreshBytes = 0
    var history: History?
    /// With --webhook: what the subscription delivered.
    var webhook: BenchWebhook.Counts?

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func ms(_ value: Double) -> String { String(format: "%.1f ms", value) }
    static func rate(_ value: Double) -> String { value.isFinite ? Int(value.rounded()).formatted() : "–" }
    static func megabytes(_ bytes: Int) -> String { String(format: "%.0f MB", Double(bytes) / 1_048_576) }

    /// The results as a table for people: medians, then each run.
    var table: String {
        func row(_ name: String, _ values: [Double], _ format: (Double) -> String) -> String {
            let runs = values.count > 1 ? "   (runs: " + values.map(format).joined(separator: ", ") + ")" : ""
            return name.padding(toLength: 40, withPad: " ", startingAt: 0) + format(Self.median(values)) + runs
        }
        func percentiles(_ name: String, _ values: [BenchWorkload.Percentiles]) -> String {
            let p50 = Self.median(values.map(\.p50)), p95 = Self.median(values.map(\.p95)), p99 = Self.median(values.map(\.p99))
            return name.padding(toLength: 40, withPad: " ", startingAt: 0)
                + "p50 \(Self.ms(p50)) · p95 \(Self.ms(p95)) · p99 \(Self.ms(p99))"
        }
        let endToEnd = runs.map(\.tasksPerSecond)
        let raw = runs.map(\.raw.tasksPerSecond)
        var lines = [
            "Taskyard bench: \(servers) server\(servers == 1 ? "" : "s"), \(agents) agents, \(tasks.formatted()) tasks × \(participants) participant\(participants == 1 ? "" : "s"), \(submit) submit, medians of \(runs.count) run\(runs.count == 1 ? "" : "s")",
            "machine: \(machine.cores) cores, \(String(format: "%.0f", machine.memoryGiB)) GiB, PostgreSQL \(machine.postgres), synchronous_commit \(machine.synchronousCommit), fsync \(machine.fsync)",
            "command: \(command)",
            "",
            row("end to end, tasks/s", endToEnd, Self.rate),
            row("raw SQL ceiling, tasks/s", raw, Self.rate),
            row("raw SQL claim + complete only, tasks/s", runs.map(\.raw.claimAndCompletePerSecond), Self.rate),
            row("end to end / raw SQL", zip(endToEnd, raw).map { $0 / $1 * 100 }) { String(format: "%.0f%%", $0) },
            row("physical ceiling (batched SQL), tasks/s", runs.map(\.physical), Self.rate),
            row("end to end / physical ceiling", zip(endToEnd, runs.map(\.physical)).map { $0 / $1 * 100 }) { String(format: "%.0f%%", $0) },
            percentiles("pick-up, idle (submit → received)", runs.map(\.idlePickUp)),
            percentiles("submit → completed, idle", runs.map(\.idleCompletion)),
            percentiles("submit → completed, under load", runs.map(\.loadedCompletion)),
        ]
        let steadyRuns = runs.compactMap(\.steady)
        if let first = steadyRuns.first {
            lines += [
                "steady load: \(Self.rate(first.rate)) tasks/s asked, one POST each, \(Int(first.seconds)) s"
                    + " (submitted: " + steadyRuns.map { Self.rate($0.submittedPerSecond) }.joined(separator: ", ") + " tasks/s)",
                percentiles("  pick-up (submit → received)", steadyRuns.map(\.pickUp)),
                percentiles("  submit → completed", steadyRuns.map(\.completion)),
            ]
        }
        if runs.allSatisfy({ $0.serverPeakBytes != nil }) {
            lines.append(row("server resident memory, peak", runs.map { Double($0.serverPeakBytes ?? 0) }) { Self.megabytes(Int($0)) })
        }
        if runs.allSatisfy({ $0.databaseConnections != nil }) {
            lines.append(row("servers' database connections, peak", runs.map { Double($0.databaseConnections ?? 0) }) { String(Int($0)) })
        }
        lines.append("agent resident memory, fresh".padding(toLength: 40, withPad: " ", startingAt: 0) + Self.megabytes(agentFreshBytes))
        lines.append(row("agent resident memory, idle after a run", runs.map { Double($0.agentIdleBytes) }) { Self.megabytes(Int($0)) })
        lines.append(row("agent resident memory, peak", runs.map { Double($0.agentPeakBytes) }) { Self.megabytes(Int($0)) })
        if let metrics {
            lines.append("GET /metrics".padding(toLength: 40, withPad: " ", startingAt: 0)
                         + "\(metrics.families) families · \(String(format: "%.1f", metrics.databaseReadMilliseconds)) ms reading the database"
                         + " · \(String(format: "%.1f", metrics.cachedMilliseconds)) ms cached")
        }
        let cpuRuns = runs.compactMap(\.cpu)
        if !cpuRuns.isEmpty {
            func ms(_ values: [Double]) -> String { String(format: "%.3f ms", Self.median(values)) }
            lines.append("CPU per task (throughput run)".padding(toLength: 40, withPad: " ", startingAt: 0)
                         + "server \(ms(cpuRuns.map(\.server))) · agents \(ms(cpuRuns.map(\.agents)))"
                         + " · PostgreSQL \(ms(cpuRuns.map(\.postgres))) · bench client \(ms(cpuRuns.map(\.bench)))")
        }
        let failed = runs.map(\.failed).reduce(0, +)
        if failed > 0 { lines.append("tasks that did not complete: \(failed)") }
        if let webhook {
            lines.append("webhook (task.completed)".padding(toLength: 40, withPad: " ", startingAt: 0)
                         + "\(webhook.received) received, \(webhook.delivered) delivered, \(webhook.pending) pending")
        }
        if let database { lines += Self.lines(of: database) }
        if let history { lines += Self.lines(of: history) }
        return lines.joined(separator: "\n")
    }

    /// What the database wrote and ran per task, as table rows.
    private static func lines(of database: DatabaseCosts) -> [String] {
        var lines: [String] = []
        if !database.statements.isEmpty {
            lines += ["", "statements per task (last throughput run, pg_stat_statements):",
                      "  " + "statement".padding(toLength: 34, withPad: " ", startingAt: 0) + "   calls/task   ms/task   mean ms"]
            for cost in database.statements.prefix(12) {
                lines.append("  " + cost.statement.padding(toLength: 34, withPad: " ", startingAt: 0)
                             + String(format: "%11.3f %9.3f %9.3f", cost.callsPerTask, cost.millisecondsPerTask, cost.meanMilliseconds))
            }
        }
        lines += ["", "row writes per task (last throughput run, pg_stat_user_tables):",
                  "  " + "table".padding(toLength: 24, withPad: " ", startingAt: 0) + " inserts  updates      HOT  deletes  indexes  index entries (at most)"]
        for table in database.tables {
            lines.append("  " + table.table.padding(toLength: 24, withPad: " ", startingAt: 0)
                         + String(format: "%8.2f %8.2f %8.2f %8.2f %8d %14.1f", table.insertsPerTask, table.updatesPerTask,
                                  table.hotUpdatesPerTask, table.deletesPerTask, table.indexes, table.indexEntriesPerTask))
        }
        return lines
    }

    /// The history measurement: the raw rate with and without it, the plans, the list pages.
    private static func lines(of history: History) -> [String] {
        var lines: [String] = []
        let ratio = history.claimAndCompleteWithHistory / history.claimAndCompleteEmpty * 100
        lines += [
            "",
            "with \(history.finishedRows.formatted()) finished rows: raw claim + complete \(Self.rate(history.claimAndCompleteWithHistory)) tasks/s, "
                + "\(String(format: "%.0f%%", ratio)) of the \(Self.rate(history.claimAndCompleteEmpty)) tasks/s before the history",
        ]
        for (statement, scans) in history.plans.sorted(by: { $0.key < $1.key }) {
            lines.append("plan of \(statement): " + scans.joined(separator: "; "))
        }
        if !history.lists.isEmpty { lines += ["", "a page of the task list over the history (GET …/tasks?<filter>&limit=100):"] }
        for list in history.lists {
            lines.append("  " + list.filter.padding(toLength: 34, withPad: " ", startingAt: 0)
                         + String(format: "%7.2f ms  %3d rows  ", list.milliseconds, list.rows) + list.scans.joined(separator: "; "))
        }
        if !history.stats.isEmpty { lines += ["", "the charts' series over the history (GET …/stats?<query>, without HTTP):"] }
        for series in history.stats {
            lines.append("  " + series.filter.padding(toLength: 34, withPad: " ", startingAt: 0)
                         + String(format: "%7.2f ms  %5d points  ", series.milliseconds, series.rows) + series.scans.joined(separator: "; "))
        }
        return lines
    }
}
