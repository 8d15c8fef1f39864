import ArgumentParser
import TaskyardCommandLine
import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity
import TaskyardServer
import TaskyardStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Taskyard HTTP server.",
        discussion: """
            Serves the HTTP API over a PostgreSQL database: clients submit and follow tasks, agents poll and report. Every route but /healthz, /readyz and /openapi.json needs a bearer token (make the first with taskyard token create --database-url). Off loopback, serve HTTPS with --tls-cert-file and --tls-key-file: tokens and grants are bearer credentials. Applies pending migrations at start-up unless --no-migrate. Stops gracefully on SIGTERM or SIGINT: no new connections, in-flight requests finish. Any number of servers can share one database.

            Example:
              taskyard serve --database-url postgres://taskyard@127.0.0.1/taskyard --listen 0.0.0.0:8080
            """
    )

    @Option(help: ArgumentHelp("PostgreSQL URL or libpq keywords. Default: $TASKYARD_DATABASE_URL.", valueName: "url"))
    var databaseURL: String?

    @Option(help: ArgumentHelp("The servers' key file (every replica the same one; mode 0600), which seals the signing keys in the database: make one with `taskyard keys create-file PATH`. Required. Default: $TASKYARD_KEY_FILE.", valueName: "path"))
    var keyFile: String?

    @Option(help: ArgumentHelp("Address to listen on. Default: $TASKYARD_LISTEN, else 127.0.0.1:8080.", valueName: "host:port"))
    var listen: String?

    @OptionGroup var tls: TLSOptions

    @Flag(help: "Do not apply migrations at start-up (run `taskyard migrate` yourself).")
    var noMigrate = false

    @Option(help: ArgumentHelp("Largest request body in bytes; larger gets 413. Default: $TASKYARD_MAX_BODY_BYTES, else 1048576.", valueName: "bytes"))
    var maxBodyBytes: Int?

    @Option(help: ArgumentHelp("Seconds a claimed task's lease lasts; agents renew it. Default: $TASKYARD_LEASE_SECONDS, else 30.", valueName: "seconds"))
    var leaseSeconds: Double?

    @Option(help: ArgumentHelp("The agents' --participant-timeout: a grant lives for its claim's lease plus this (or the task's timeout_seconds, when shorter). Default 300.", valueName: "seconds"))
    var participantTimeout = 300.0

    @Option(help: ArgumentHelp("Database connections at most. Default: $TASKYARD_POOL_SIZE, else 10.", valueName: "n"))
    var poolSize: Int?

    @Option(name: .customLong("lease"), help: ArgumentHelp("A lease for one task type, TYPE=SECONDS; repeat for several.", valueName: "type=seconds"))
    var leasesByType: [String] = []

    @Option(name: .customLong("max-attempts"), help: ArgumentHelp("Attempts for one task type when a task does not ask, TYPE=N; repeat for several. Others get 3.", valueName: "type=n"))
    var maxAttemptsByType: [String] = []

    @Option(name: .customLong("timeout"), help: ArgumentHelp("An execution timeout for one task type when a task does not set timeout_seconds, TYPE=SECONDS; repeat for several. Others run without one.", valueName: "type=seconds"))
    var timeoutsByType: [String] = []

    @Option(help: ArgumentHelp("First retry delay after a failed attempt, doubled per attempt. Default 2.", valueName: "seconds"))
    var retryBackoffBase = 2.0

    @Option(help: ArgumentHelp("Longest retry delay. Default 300.", valueName: "seconds"))
    var retryBackoffCap = 300.0

    @Option(help: ArgumentHelp("A node not heard from for this long is offline, and its queued tasks move. Default 60.", valueName: "seconds"))
    var nodeTimeout = 60.0

    @Option(help: ArgumentHelp("How long finished tasks are kept, e.g. 30d or 12h; 0 keeps them forever. Default: $TASKYARD_RETENTION, else 30d.", valueName: "duration"))
    var retention: String?

    @Option(name: .customLong("limit"), help: ArgumentHelp(
        "An input limit, NAME=VALUE; repeat for several. Names (defaults): " + InputLimits.settings.map { setting in
            "\(setting.name) (\(InputLimits.default[keyPath: setting.keyPath])): \(setting.about)"
        }.joined(separator: "; ") + ".", valueName: "name=value"))
    var limits: [String] = []

    @Option(help: ArgumentHelp("Longest a database statement may run before it is cancelled (the request gets 503). Default 30.", valueName: "seconds"))
    var statementTimeout = 30.0

    @Option(help: ArgumentHelp("Longest a statement waits for a lock someone else holds (a manual LOCK, a migration) before the request gets 503. Default 5.", valueName: "seconds"))
    var lockTimeout = 5.0

    @Option(help: ArgumentHelp("A database connection idle inside a transaction this long is closed. Default 60.", valueName: "seconds"))
    var idleInTransactionTimeout = 60.0

    @Option(help: ArgumentHelp("Client connections open at once; more are closed as they arrive. Default 4096.", valueName: "n"))
    var maxConnections = 4096

    @Option(help: ArgumentHelp("A streaming standby of the database for history reads (task lists, a task, its participants, events and tree), while its replay is at most --max-read-lag behind; a client that just wrote reads from the primary. Default: $TASKYARD_READ_DATABASE_URL, else every read goes to the primary.", valueName: "url"))
    var readDatabaseURL: String?

    @Option(help: ArgumentHelp("A standby further behind than this is skipped for the primary. Default 2.", valueName: "seconds"))
    var maxReadLag = 2.0

    @Option(help: ArgumentHelp("Wait before a failed webhook delivery is tried again, four times longer after each next failure (at most 6 h apart, for a day). Default 5.", valueName: "seconds"))
    var webhookRetryBase = 5.0

    @Option(help: ArgumentHelp("A webhook receiver that has not answered within this long has failed that attempt. Default 10.", valueName: "seconds"))
    var webhookTimeout = 10.0

    @Option(help: ArgumentHelp("How often the maintenance leader counts what finished and samples the queue for the charts (GET …/stats): how far behind they are. 0 turns the charts off. Default 2.", valueName: "seconds"))
    var statsInterval = 2.0

    @Flag(help: "Never run maintenance (lease expiry, node monitor, retention, schedules, webhooks, charts) on this replica.")
    var noMaintenance = false

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var tracing: TracingOptions

    func run() async throws {
        let logger = try logging.makeLogger("taskyard.server")
        guard let databaseURL = setting(databaseURL, "TASKYARD_DATABASE_URL") else {
            throw ValidationError("no database given: pass --database-url or set TASKYARD_DATABASE_URL")
        }
        guard let keyFilePath = setting(keyFile, "TASKYARD_KEY_FILE") else {
            throw ValidationError("no key file given: pass --key-file or set TASKYARD_KEY_FILE (make one with `taskyard keys create-file PATH`)")
        }
        var configuration = ServerConfiguration(keyFile: try KeyFile.load(path: keyFilePath))
        let address = try ListenAddress(setting(listen, "TASKYARD_LISTEN", default: "127.0.0.1:8080")!, option: "--listen")
        configuration.host = address.host
        configuration.port = address.port
        let (tlsFiles, plainHTTPWarning) = try tls.files(listeningOn: address)
        configuration.tls = tlsFiles
        if let plainHTTPWarning { logger.warning("\(plainHTTPWarning)") }
        if let bytes = try number(maxBodyBytes, "TASKYARD_MAX_BODY_BYTES", Int.self) { configuration.maximumBodyBytes = bytes }
        if let seconds = try number(leaseSeconds, "TASKYARD_LEASE_SECONDS", Double.self) {
            configuration.lease = try checkedDuration(seconds, "--lease-seconds")
        }
        configuration.participantTimeout = try checkedDuration(participantTimeout, "--participant-timeout")
        let poolSize = try number(poolSize, "TASKYARD_POOL_SIZE", Int.self) ?? 10
        guard configuration.maximumBodyBytes > 0, poolSize > 0 else {
            throw ValidationError("--max-body-bytes and --pool-size must be positive")
        }
        configuration.maintenanceEnabled = !noMaintenance
        let retryBackoffBase = try checkedDuration(self.retryBackoffBase, "--retry-backoff-base")
        let retryBackoffCap = try checkedDuration(self.retryBackoffCap, "--retry-backoff-cap")
        guard retryBackoffCap >= retryBackoffBase else {
            throw ValidationError("--retry-backoff-cap must be at least --retry-backoff-base")
        }
        configuration.nodeMonitor.nodeTimeout = try checkedDuration(nodeTimeout, "--node-timeout")
        let maximumReadLag = try checkedDuration(maxReadLag, "--max-read-lag")
        if let readURL = setting(readDatabaseURL, "TASKYARD_READ_DATABASE_URL") {
            var replica = ReadReplica.Configuration(database: try PostgresConfiguration(readURL))
            replica.maximumLag = maximumReadLag
            configuration.readReplica = replica
        }
        configuration.webhooks.backoff.base = try checkedDuration(webhookRetryBase, "--webhook-retry-base")
        configuration.webhooks.attemptTimeout = try checkedDuration(webhookTimeout, "--webhook-timeout")
        configuration.stats.interval = try checkedDuration(statsInterval, "--stats-interval", allowZero: true, atMost: 3600)
        if let retention = setting(retention, "TASKYARD_RETENTION") {
            configuration.retention.retention = try parseDuration(retention, option: "--retention")
        }
        var storeConfiguration = TaskStore.Configuration()
        storeConfiguration.retry = RetryPolicy(base: retryBackoffBase, cap: retryBackoffCap)
        storeConfiguration.leaseByType = try perType(leasesByType, rule: "--lease takes TYPE=SECONDS with SECONDS above 0 and at most 604800, e.g. --lease backup=600") {
            Double($0).flatMap { $0 > 0 && $0 <= 604_800 ? Duration.seconds($0) : nil }
        }
        storeConfiguration.timeoutSecondsByType = try perType(
            timeoutsByType, rule: "--timeout takes TYPE=SECONDS with SECONDS from 1 to 604800, e.g. --timeout backup=3600"
        ) { Int($0).flatMap { TaskSubmission.Limits.timeoutSeconds.contains($0) ? $0 : nil } }
        storeConfiguration.maxAttemptsByType = try perType(
            maxAttemptsByType, rule: "--max-attempts takes TYPE=N with N from 1 to 100, e.g. --max-attempts volume_create=5"
        ) { Int($0).flatMap { TaskSubmission.Limits.maxAttempts.contains($0) ? $0 : nil } }
        for entry in limits {
            do { try storeConfiguration.limits.set(entry) } catch { throw ValidationError("--limit: \(error.message)") }
        }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        configuration.maximumConnections = maxConnections
        configuration.statementTimeout = try checkedDuration(statementTimeout, "--statement-timeout")
        configuration.lockTimeout = try checkedDuration(lockTimeout, "--lock-timeout")
        configuration.idleInTransactionTimeout = try checkedDuration(idleInTransactionTimeout, "--idle-in-transaction-timeout")
        var database = try PostgresConfiguration(databaseURL)
        database.sessionSettings = configuration.databaseSessionSettings
        let store = try await Runtime.openStore(database: database, poolSize: poolSize,
                                                migrate: !noMigrate, configuration: storeConfiguration, logger: logger)
        let scheme = configuration.tls == nil ? "http" : "https"
        let app = try TaskyardHTTPServer.application(store: store, configuration: configuration, logger: logger) { port in
            logger.info("listening", metadata: ["address": "\(scheme)://\(address.host):\(port)"])
        }
        // The store's connections close after the server has stopped (services stop in reverse order).
        let exporter = try tracing.services(serviceName: "taskyard-server")
        try await Runtime.run(exporter + [StoreService(store: store), app], logger: logger)
    }
}

/// Per-type settings given as repeated `TYPE=VALUE` flags; `parse` returns nil for a value out of range.
func perType<Value>(_ entries: [String], rule: String, _ parse: (String) -> Value?) throws -> [String: Value] {
    var values: [String: Value] = [:]
    for entry in entries {
        let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = parse(parts[1]) else { throw ValidationError("\(rule) (got \(entry))") }
        values[parts[0]] = value
    }
    return values
}

