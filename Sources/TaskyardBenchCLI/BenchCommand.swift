import ArgumentParser
import TaskyardCommandLine
import EmbeddedPostgres
import Foundation
import Postgres
import Synchronization
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskyard-bench",
        abstract: "Measure Taskyard on this machine: tasks/s end to end, pick-up latency, memory, and the raw SQL ceiling.",
        discussion: """
            A real workload, not a micro-benchmark. Starts PostgreSQL in a temporary folder (or uses --database-url), a server and one agent per node as processes of their own (or uses --server), and runs the noop handler. Each run measures:
              - idle pick-up: tasks submitted one at a time to waiting agents; submit → received and submit → completed, from the moment the client sent the submit;
              - throughput: --tasks tasks submitted in batches (or one by one), tasks/s from the first submit to the last finish, and submit → completed under that load;
              - the raw SQL ceiling: the same insert, claim and report statements run straight through libpq, without HTTP, on the same database;
              - the physical ceiling: the same work (insert, claim, complete, each with an event row) in 100-row batched SQL from 4 connections on bare tables: how far PostgreSQL itself goes here;
              - with --rate R: one submit per request at R a second for --duration seconds, and submit → received and submit → completed under that steady load.
            It reports medians over --runs, the server's peak resident memory and the agents' memory idle and under load. With --preload-history N it first COPYs N finished tasks into the table and compares the raw claim-and-complete rate with and without them, and prints the plans of the hot statements. Build in release mode for numbers worth quoting.

            Example:
              .build/release/taskyard-bench
              .build/release/taskyard-bench --tasks 50000 --agents 3 --participants 1 --runs 3 --json
              .build/release/taskyard-bench --preload-history 10000000 --runs 1
              .build/release/taskyard-bench --submit single --rate 1500 --duration 60 --servers 2
            """
    )

    enum SubmitMode: String, ExpressibleByArgument, CaseIterable {
        case bulk, single
    }

    @Option(help: ArgumentHelp("PostgreSQL to use. Default: a PostgreSQL of its own in a temporary folder, removed afterwards.", valueName: "url"))
    var databaseURL: String?

    @Option(help: ArgumentHelp("A running Taskyard server to use instead of starting one (needs --database-url, the server's database).", valueName: "url"))
    var server: String?

    @Option(help: "Servers (replicas of one deployment), each a process of its own: agent i polls server i mod N, the bench's requests take turns.")
    var servers = 1

    @Option(help: "Agents (nodes), each a process of its own.")
    var agents = 3

    @Option(help: "Tasks per throughput run.")
    var tasks = 20_000

    @Option(help: "Participating nodes per task (at most --agents).")
    var participants = 1

    @Option(help: "bulk: POST …/tasks/batch with --batch-size tasks; single: one POST per task from 32 clients at once.")
    var submit = SubmitMode.bulk

    enum TaskType: String, ExpressibleByArgument, CaseIterable {
        case noop, echo
    }

    @Option(name: .customLong("type"), help: "The task type: noop (no result), or echo (each participant returns the payload as its result).")
    var taskType = TaskType.noop

    @Option(help: ArgumentHelp("Each task's payload, about this many bytes of JSON (volumes with numbers, strings and labels); 0: {}.", valueName: "bytes"))
    var payloadBytes = 0

    @Option(help: "Tasks per bulk submit (1–1000).")
    var batchSize = 1000

    @Option(help: "Tasks each agent runs at once (its --concurrency); noop tasks take no time, so many.")
    var concurrency = 1000

    @Option(help: "Tasks submitted one at a time to idle agents, per run, for the pick-up latency.")
    var samples = 200

    @Option(help: ArgumentHelp("Steady load: also submit one task per request at this many a second for --duration seconds, and measure latency under it.", valueName: "tasks/s"))
    var rate: Double?

    @Option(help: ArgumentHelp("Seconds of the steady load of --rate.", valueName: "seconds"))
    var duration = 60.0

    @Option(help: "Runs; the table shows medians.")
    var runs = 3

    @Option(help: ArgumentHelp("Finished tasks to COPY into the table before measuring (e.g. 10000000).", valueName: "n"))
    var preloadHistory = 0

    @Option(help: ArgumentHelp("Instead of the runs: hold this many long polls open, each as a node of its own with its own node token (a fleet of idle agents), and measure for --duration seconds what they cost the servers and PostgreSQL.", valueName: "n"))
    var idlePolls = 0

    @Option(name: .customLong("serve-option"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An option for every `taskyard serve` the bench starts, e.g. --serve-option=--stats-interval=0 (to measure what a setting costs); repeat for several.", valueName: "option"))
    var serveOptions: [String] = []

    @Option(name: .customLong("agent-option"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An option for every agent the bench starts, e.g. --agent-option=--otel-endpoint=http://127.0.0.1:4318/v1/traces; repeat for several.", valueName: "option"))
    var agentOptions: [String] = []

    @Flag(help: "Print the results as JSON on standard output (progress stays on standard error).")
    var json = false

    @Option(name: .customLong("postgres-setting"), help: ArgumentHelp("A setting for the PostgreSQL the bench starts, NAME=VALUE; repeat for several (e.g. shared_buffers=1GB).", valueName: "name=value"))
    var postgresSettings: [String] = []

    @Option(help: ArgumentHelp("Save the server's GET /metrics, scraped during the last run, to this file.", valueName: "path"))
    var metricsOut: String?

    @Flag(help: "Subscribe a webhook to the measured cluster's task.completed, delivered to a receiver the bench serves on loopback: the runs then measure the hot path with a subscription active.")
    var webhook = false

    @Flag(help: "Keep the temporary folder (PostgreSQL's data, the server's and agents' logs) and say where it is.")
    var keep = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard agents >= 1, servers >= 1, tasks >= 1, runs >= 1, samples >= 1, concurrency >= 1, preloadHistory >= 0 else {
            throw ValidationError("--agents, --servers, --tasks, --runs, --samples and --concurrency must be at least 1; --preload-history at least 0")
        }
        if let rate, !(rate > 0 && rate <= 100_000) { throw ValidationError("--rate must be from 1 to 100000 tasks/s") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be from 1 to 3600 seconds") }
        if server != nil, servers > 1 { throw ValidationError("--servers starts servers; it does not go with --server") }
        guard (1...agents).contains(participants) else { throw ValidationError("--participants must be from 1 to --agents (\(agents))") }
        guard (0...20_000).contains(idlePolls) else { throw ValidationError("--idle-polls must be from 0 to 20000") }
        if idlePolls > 0, server != nil { throw ValidationError("--idle-polls measures the servers the bench starts; it does not go with --server") }
        guard (1...1000).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to 1000") }
        guard (0...200_000).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be from 0 to 200000 (the server takes 256 KiB)") }
        if server != nil, databaseURL == nil {
            throw ValidationError("--server needs --database-url: the bench reads its timings from the server's database")
        }
    }

    private func postgresSettingsByName() throws -> [String: String] {
        // Statement times for the report's statement table, where the server binaries have the module (a
        // PostgreSQL told to preload a module it lacks does not start); a --postgres-setting may say otherwise.
        var settings: [String: String] = [:]
        if let bin = try? EmbeddedPostgres.findBinDirectory(),
           FileManager.default.fileExists(atPath: bin.deletingLastPathComponent().appending(path: "lib/pg_stat_statements.so").path) {
            settings["shared_preload_libraries"] = "pg_stat_statements"
        }
        for entry in postgresSettings {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--postgres-setting takes NAME=VALUE, e.g. shared_buffers=1GB (got \(entry))")
            }
            settings[String(parts[0])] = String(parts[1])
        }
        return settings
    }

    func run() async throws {
        let progress = BenchProgress(quiet: false)
        let folder = FileManager.default.temporaryDirectory.appending(path: "taskyard-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (url, embedded) = try await database(in: folder, progress: progress)
        defer {
            if let embedded { try? embedded.stop(mode: .fast) }
            if keep {
                progress.finish("kept \(folder.path): the logs of the server and agents, and PostgreSQL's data (postgres/)")
            } else {
                try? FileManager.default.removeItem(at: folder)
            }
        }

        let logger = try logging.makeLogger("taskyard.bench")
        // Named apart from the servers' connections, which the bench counts.
        var configuration = try PostgresConfiguration(url)
        configuration.applicationName = "taskyard-bench"
        let store = try await TaskStore.open(database: configuration, poolSize: agents + 4, migrate: true) { migration in
            logger.info("applied migration", metadata: ["file": "\(migration.name)"])
        }.store
        let stamp = String(Int(Date().timeIntervalSince1970))
        let cluster = "bench-\(stamp)"
        let nodes = (1...agents).map { "bench-\($0)" }
        _ = try await store.clusters.createCluster(id: cluster, name: "taskyard bench")
        let tokens = try await BenchTokens.make(cluster: cluster, nodes: nodes, folder: folder, credentials: CredentialStore(pool: store.pool))
        let settings = try await store.pool.query(BenchSQL.settings).single()
        var report = BenchReport(
            command: (["taskyard-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            machine: .init(cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30),
                           postgres: try settings.decode("version"), synchronousCommit: try settings.decode("synchronous_commit"),
                           fsync: try settings.decode("fsync")),
            servers: server == nil ? servers : 1, agents: agents, tasks: tasks, participants: participants, submit: submit.rawValue, runs: [])

        let workload = BenchWorkload(store: store, clients: [TaskyardClient(baseURL: server ?? "http://127.0.0.1:1", token: tokens.admin)],
                                     cluster: cluster, nodes: nodes, participants: participants, type: taskType.rawValue,
                                     payload: BenchWorkload.payload(bytes: payloadBytes), progress: progress)
        if preloadHistory > 0 {
            report.history = try await measureHistory(workload: workload, store: store, cluster: cluster, node: nodes[0],
                                                      stamp: stamp, progress: progress)
        }

        progress.finish("starting the server and \(agents) agents …")
        let processes = try await BenchProcesses.start(databaseURL: url, serverURL: server, serverCount: servers, cluster: cluster, nodes: nodes,
                                                       agentConcurrency: concurrency, logFolder: folder,
                                                       adminToken: tokens.admin, nodeTokenFiles: tokens.nodeFiles, serveOptions: serveOptions,
                                                       agentOptions: agentOptions)
        let measured = BenchWorkload(store: store, clients: processes.serverURLs.map { TaskyardClient(baseURL: $0, token: tokens.admin) },
                                     cluster: cluster, nodes: nodes, participants: participants, type: taskType.rawValue,
                                     payload: BenchWorkload.payload(bytes: payloadBytes), progress: progress)
        if idlePolls > 0 {
            let cost = try await BenchIdle(count: idlePolls, pollWait: .seconds(20), window: .seconds(duration))
                .measure(store: store, cluster: cluster, processes: processes, progress: progress)
            await processes.stop()
            await store.pool.close()
            say(String(decoding: try BenchReport.encoder.encode(cost), as: UTF8.self))
            return
        }
        let subscription = webhook ? BenchWebhook() : nil
        do {
            try await subscription?.start(client: TaskyardClient(baseURL: processes.serverURLs[0], token: tokens.admin), cluster: cluster)
            try await Task.sleep(for: .seconds(1))
            report.agentFreshBytes = Self.agentBytes(processes)
            // Steady state, not a cold start: some traffic through every part first.
            _ = try await measured.throughput(count: min(tasks, 2 * batchSize), bulk: true, batchSize: batchSize, label: "warm-up")
            // Statement times where the server loads pg_stat_statements (the bench's own PostgreSQL does).
            let statementTimes = (try? await store.pool.withConnection { connection in
                try connection.execute(BenchSQL.enableStatementTimes)
            }) != nil
            for run in 1...runs {
                try await measureRun(run, measured: measured, processes: processes, store: store, statementTimes: statementTimes,
                                     stamp: stamp, progress: progress, report: &report)
            }
        } catch {
            await processes.stop()
            Self.showLogs(of: processes, progress: progress)
            throw error
        }
        if let subscription {
            // The deliveries of the last run's tasks go out after it: a moment for them, then the counts.
            try await Task.sleep(for: .seconds(2))
            report.webhook = try await subscription.stop(store: store)
        }
        await processes.stop()
        await store.pool.close()
        if json {
            say(String(decoding: try BenchReport.encoder.encode(report), as: UTF8.self))
        } else {
            say(report.table)
        }
    }

    /// The database to measure on: --database-url's, or a PostgreSQL of its own in `folder`.
    private func database(in folder: URL, progress: BenchProgress) async throws -> (url: String, embedded: EmbeddedPostgres?) {
        if let databaseURL { return (databaseURL, nil) }
        progress.finish("starting PostgreSQL in \(folder.path) …")
        let database = try EmbeddedPostgres(dataDirectory: folder.appending(path: "postgres"), socketDirectory: folder.appending(path: "run"),
                                            port: LocalPorts.free(1)[0], listenOnTCP: true,
                                            settings: try postgresSettingsByName())
        try database.initializeIfNeeded()
        try database.start()
        if !keep { try database.stopWhenProcessExits(getpid(), thenRemove: folder) }
        let admin = try await PostgresConnection.connect(database.configuration())
        try await admin.perform { connection in try connection.execute("CREATE DATABASE taskyard") }
        await admin.close()
        return ("postgresql://postgres@127.0.0.1:\(database.port)/taskyard", database)
    }

    /// The raw claim-and-complete rate before and after --preload-history finished tasks, the hot
    /// statements' plans over them, and every list filter's page time.
    private func measureHistory(workload: BenchWorkload, store: TaskStore, cluster: String, node: String, stamp: String,
                                progress: BenchProgress) async throws -> BenchReport.History {
        let before = try await workload.rawCeiling(rawCluster: "bench-raw-empty-\(stamp)", count: tasks, batchSize: batchSize,
                                                   claimBatch: concurrency, label: "raw SQL, before the history")
        let historyCluster = "bench-history-\(stamp)"
        _ = try await store.clusters.createCluster(id: historyCluster, name: "taskyard bench: finished history")
        // Ranges for the history's ids, made ahead as the maintenance leader would have made them over
        // the days it spans (about six ranges): the rows land in ranges, not in the overflow.
        var ranges = MaintenanceStore.HistoryRanges(retention: .seconds(30 * 86_400))
        ranges.minimumSpan = max(ranges.minimumSpan, Int64(preloadHistory / 6 + 1))
        try await store.maintenance.extendHistory(ranges, room: Int64(preloadHistory) + ranges.minimumSpan)
        let started = ContinuousClock.now
        try await BenchHistory.preload(preloadHistory, cluster: historyCluster, node: "history", pool: store.pool, progress: progress)
        let seconds = (ContinuousClock.now - started).inSeconds
        progress.finish("preloaded \(preloadHistory) finished tasks in \(Int(seconds)) s (\(Int(Double(preloadHistory) / seconds)) rows/s)")
        try await BenchHistory.preloadStats(cluster: historyCluster, pool: store.pool)
        let after = try await workload.rawCeiling(rawCluster: "bench-raw-history-\(stamp)", count: tasks, batchSize: batchSize,
                                                  claimBatch: concurrency, label: "raw SQL, with the history")
        let finishedRows = try await store.pool.query(BenchSQL.finishedRows).single().decode("rows", as: Int.self)
        return .init(finishedRows: finishedRows, claimAndCompleteEmpty: before.claimAndCompletePerSecond,
                               claimAndCompleteWithHistory: after.claimAndCompletePerSecond,
                               plans: try await BenchHistory.scans(cluster: cluster, node: node, pool: store.pool),
                               lists: try await BenchHistory.listTimings(cluster: historyCluster, node: "history", pool: store.pool),
                               stats: try await BenchHistory.statsTimings(cluster: historyCluster, node: "history", store: store))
    }


    /// One run: idle pick-up, throughput (with CPU, memory, and on the last run the database's costs and a
    /// metrics scrape), the raw and physical ceilings, and the steady load if asked; appended to `report`.
    private func measureRun(_ run: Int, measured: BenchWorkload, processes: BenchProcesses, store: TaskStore, statementTimes: Bool,
                            stamp: String, progress: BenchProgress, report: inout BenchReport) async throws {
        let label = "run \(run)/\(runs)"
        let idle = try await measured.idleLatency(samples: samples)
        var countersBefore: DatabaseCounters?
        if run == runs {
            // Backends report their table counters when idle, at most 10 s late (PostgreSQL 15): what
            // came before must be in before the run starts, and the run's own in after it.
            try await Task.sleep(for: .seconds(11))
            countersBefore = try? await DatabaseCounters.read(store.pool, withStatements: statementTimes)
        }
        let cpuBefore = CPUSnapshot(processes)
        let peaks = MemoryPeaks(processes)
        let connections = Mutex(0)
        let sampler = Task {
            while !Task.isCancelled {
                peaks.sample()
                if let now = try? await BenchIdle.serverConnections(store) { connections.withLock { $0 = max($0, now) } }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        // What an operator's Prometheus would see while the last run works.
        let scrape: Task<String?, Never>? = run == runs ? Task {
            try? await Task.sleep(for: .seconds(1))
            return try? await measured.client(0).metrics()
        } : nil
        let throughput = try await measured.throughput(count: tasks, bulk: submit == .bulk, batchSize: batchSize, label: label)
        let cpu = CPUSnapshot(processes).perTask(since: cpuBefore, tasks: tasks)
        if let countersBefore {
            try await Task.sleep(for: .seconds(11))
            if let after = try? await DatabaseCounters.read(store.pool, withStatements: statementTimes) {
                report.database = after.perTask(since: countersBefore, tasks: tasks)
            }
        }
        if let text = await scrape?.value {
            if let metricsOut { try text.write(toFile: metricsOut, atomically: true, encoding: .utf8) }
            report.metrics = try await measured.scrapeCost(families: text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.count)
        }
        sampler.cancel()
        peaks.sample()
        // The agents are idle while the raw SQL runs: their memory after it is their idle memory after a burst.
        let raw = try await measured.rawCeiling(rawCluster: "bench-raw-\(stamp)-\(run)", count: tasks, batchSize: batchSize,
                                                claimBatch: concurrency, label: "\(label), raw SQL")
        let physical = try await measured.physicalCeiling(count: tasks, connections: 4, label: "\(label), physical ceiling")
        var steady: BenchWorkload.Steady?
        if let rate {
            steady = try await measured.steady(rate: rate, seconds: duration, label: "\(label), steady \(Int(rate)) tasks/s")
        }
        try await Task.sleep(for: .seconds(2))
        let idleAgentBytes = Self.agentBytes(processes)
        let result = BenchReport.Run(
            tasksPerSecond: throughput.tasksPerSecond, failed: throughput.failed, raw: raw, physical: physical, steady: steady,
            idlePickUp: idle.pickUp, idleCompletion: idle.completion, loadedCompletion: throughput.completion,
            serverPeakBytes: peaks.server, agentIdleBytes: idleAgentBytes, agentPeakBytes: peaks.agent, cpu: cpu,
            databaseConnections: connections.withLock { $0 })
        report.runs.append(result)
        progress.finish("\(label): \(Int(result.tasksPerSecond)) tasks/s end to end, raw SQL \(Int(raw.tasksPerSecond)) tasks/s, pick-up p50 \(BenchReport.ms(idle.pickUp.p50))")
    }

    /// The largest resident memory of any agent now.
    private static func agentBytes(_ processes: BenchProcesses) -> Int {
        processes.agents.compactMap { BenchProcesses.residentBytes(of: $0.pid) }.max() ?? 0
    }

    /// The last lines of each child's log, or the reason a crash printed: why a run failed.
    private static func showLogs(of processes: BenchProcesses, progress: BenchProgress) {
        for child in processes.servers + processes.agents {
            let log = (try? String(contentsOf: child.log, encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n")
            // A crash prints its reason first and a long backtrace after: show the reason.
            let crash = lines.firstIndex { $0.contains("Fatal error") || $0.contains("Crash") || $0.contains("💣") }
            let tail = (crash.map { lines[$0...].prefix(40) } ?? lines.suffix(5)).joined(separator: "\n")
            if !tail.isEmpty { progress.finish("last lines of the \(child.role)'s log:\n\(tail)") }
        }
    }
}

/// The largest resident memory seen of the server and of any agent.
final class MemoryPeaks: Sendable {
    private let processes: BenchProcesses
    private let peaks = Mutex((server: 0, agent: 0))

    init(_ processes: BenchProcesses) { self.processes = processes }

    var server: Int? { processes.servers.isEmpty ? nil : peaks.withLock { $0.server } }
    var agent: Int { peaks.withLock { $0.agent } }

    func sample() {
        let server = processes.servers.compactMap { BenchProcesses.residentBytes(of: $0.pid) }.max() ?? 0
        let agent = processes.agents.compactMap { BenchProcesses.residentBytes(of: $0.pid) }.max() ?? 0
        peaks.withLock { peaks in
            peaks.server = max(peaks.server, server)
            peaks.agent = max(peaks.agent, agent)
        }
    }
}

/// The bench's credentials, as a deployment has them: an admin token for its client, a node token per
/// agent (in a 0600 file of the bench's folder), so that authentication is part of what it measures.
struct BenchTokens {
    let admin: String
    let nodeFiles: [String: String]

    static func make(cluster: String, nodes: [String], folder: URL, credentials: CredentialStore) async throws -> BenchTokens {
        let admin = TokenSecret.generate()
        _ = try await credentials.createToken(TokenRequest(kind: .client, name: "bench", scopes: [.admin], clusterID: cluster),
                                              secretHash: TokenSecret.hash(admin))
        var files: [String: String] = [:]
        for node in nodes {
            let secret = try await nodeToken(cluster: cluster, node: node, credentials: credentials)
            let file = folder.appending(path: "token-\(node)")
            _ = FileManager.default.createFile(atPath: file.path, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
            files[node] = file.path
        }
        return BenchTokens(admin: admin, nodeFiles: files)
    }

    /// A node token of its own for `node` (only its hash is stored); the secret.
    static func nodeToken(cluster: String, node: String, credentials: CredentialStore) async throws -> String {
        let secret = TokenSecret.generate()
        _ = try await credentials.createToken(TokenRequest(kind: .node, name: "bench \(node)", clusterID: cluster, nodeID: node),
                                              secretHash: TokenSecret.hash(secret))
        return secret
    }
}
